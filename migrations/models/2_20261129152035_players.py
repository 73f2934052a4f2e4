from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- Players (bearer tokens): a build may belong to a player (owner_player, never shown;
        -- creator_name is), and a vote carries its player: one vote per build per player,
        -- next to one per build per session (NULLs are distinct: anonymous votes unaffected).
        ALTER TABLE "builds" ADD "creator_name" VARCHAR(64);
        ALTER TABLE "builds" ADD "owner_player" VARCHAR(128);
        ALTER TABLE "build_votes" ADD "player_id" VARCHAR(128);
        CREATE INDEX IF NOT EXISTS "builds_owner_player_idx" ON "builds" ("owner_player");
        CREATE UNIQUE INDEX IF NOT EXISTS "uid_build_votes_build_i_d04d51" ON "build_votes" ("build_id", "player_id");"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP INDEX IF EXISTS "uid_build_votes_build_i_d04d51";
        DROP INDEX IF EXISTS "builds_owner_player_idx";
        ALTER TABLE "builds" DROP COLUMN "creator_name";
        ALTER TABLE "builds" DROP COLUMN "owner_player";
        ALTER TABLE "build_votes" DROP COLUMN "player_id";"""


MODELS_STATE = (
    "eJztXG1v2zgS/iuEvlwKuLnUSZx07wVw0vQ2u0l8l7h7h90uFFpibCKyqJWoukab/34z1L"
    "ssKVJqp45WQNFYQw6HekgO5xnS/qLNhcksb/fE55ap/UC+aDadM/iQLegRjTpOIkaBpBNL"
    "1ZxgFSWiE0+61JAgvaOWx0BkMs9wuSO5sEFq+5aFQmFARW5PE5Fv8z98pksxZXLGXCj47X"
    "cQc9tkn5mHj1+0O87QEHzWuKc7/sTiBpo1XEYlM3Uq8Ul1R+emhvrss+MyzwPrXtRk9IJB"
    "t3WbLZgnof5n9VJLRxVqShdeRj089Ei59U9CMt0Qvi2/uS+OcHyLus0647h8Tt2lTl1jxp"
    "RKTWOhXiNjHjOEbT7FXKLZyCBMp7oWsGqzxg2LejADsJl6JgKFpnNFsrljwayoaSSq3syO"
    "WNjMBZRV0zUtBTpPMAP9W8IibWIlUHnEGGo797qyl/FG8UKCCqpUj1o4nVH3vaqPjmUCK9"
    "Hy53Zex1nKmbBjJfA+KJ0y6Bku15TDQn8UerZIFPgmEEjXZ7FTMhOBye6ob8mUg5voiUzT"
    "9avRWL85G+u61sAlwnpBd8pt6Sks5vSzbjF7Kmfw+GbvIbCToBHUQoO/DK9Pfxxe77zZe4"
    "UGBayMwFVfhSV9VfSgmqCS6skAJ5Crvw3gjuqvB+pIkGCd7CjfAex6aFfBHeKd4JvuWQOY"
    "c2pPQjucttsJdn+vFtpYrRTuoDCL9+o+2QD1QuU2zvRBnYk+KJ/ngzzsRRFDA+BL1Dvoa0"
    "CfCm8aIJ7VaiHQ+/0aQO/3S4HGoizQKkhtAHFUv4Xgrn8WZ8hWFuETISxG7WKQM3o5pCeg"
    "uCmoo5hwA1BXQHsyGl1gy3PP+8NSgvNxDuMPlydngL2CHipxqcTnV+NVwGPG0hjytOYzgh"
    "5LXizqWf7WwJmsKLYwJHxbJyB8Wx4Ovs07lQyNbQx2otc+rN/0j+t48P5xuQvHslwkglkx"
    "4TaPRXJ67YN7cFAD7cFBKdhYlA9GJJjXPX++ivS5LcsikrRSDmYepDY34bf3NgXyFHvwuv"
    "/m4OjgeH9wcAxVVC9jyVEF7qveOZvkrQlqVqkDNQ9qNleeBfUdlEg+ZxV+IdbMIWuGqrvR"
    "h5cYVMMLmiPbWob+qwLX8fnl2c14ePnvTCDybjg+w5K+ki5z0p18AB43Qv57Pv6R4CP5dX"
    "R1puAVnpy6ymJSb/wrpoY16kuh22KhUzOVD42kEWqZUfcd84mjntXsRn1bRj3CKDXsqveY"
    "zb+7TyWXUTChxv2CuqaeKcl6Wq+Ad4Rq73++ZsAvikPd9JnlL0K+xCnwEE36SJoGU/RFGZ"
    "qrRfP+PC+hNp2qV0LbaGkFsLIT4AjNR06B9Xj01nsU/FvQvOJQAdEJD1VTBfEBk/Z71clx"
    "yQFtL4qBah1qBe+pO8zlwnzqmVbRadYJn5aGE4UnWQVhROiEt/cgKwgj3vb7+/tH/b39wf"
    "HhwdHR4fFeHE+sFlUFFifn/8LYIuPZomCj/HgrNY9WRqEqHZ3WamH+bv1UO1mXDXDOKLWP"
    "9W2EZIf+awXlmzm1rEeY3/MSlM07l/3+0SB2J/hQ5UBuLocXFx09aX+gWoeebMdNk+89vh"
    "u4a7LCBnKYrwL+XriMT+2f2VLBfg5dpHbhyVn+suILg7ss6FdB6SIOHTPzDN4e3pkFxwmn"
    "w5vT4buzINgsZlib5A/vGTOxJa2APsRllezhLl3r2W6Rusxg/FPsqOsRgKireqz9xPg/bq"
    "iZs8mpdTfbCr1NVegPr+wum0AeK7TSude93FZ5u23luhUsHwfsMt2zueOwghiq4n5EgW4L"
    "oT+shfxhBfCHq7h7DC9K6ehjmxHbjFoL0a7DuMr5Vm22VXXrp4RptQHdOseY5aeYK4eYhp"
    "jPWdFhW8VZcaLSwoTBhrx0lwV7pixYLtRskk3IqXbphG1PJzQ499ooK7N8b3YhploRK4vK"
    "epWsDGvpVljtMVqmjWxGXLEgDnMJemMuYQYS6J61lNzwyIRKY/YDocRlMB+gSAkI90BgiK"
    "nNPVXdJN49hn3mrpabPZux8DhpLP9aEjZf6Dw/fDh/V5IsSunk1rLvc3MXNTdD4bS/3/m2"
    "gaNFlCX87+Cf2oYWdcUiDm5YB6syvd7Uq1dzN/aJYfsreJfmtxOFNuW313YHRy3xJ21LWc"
    "1uV+p2pVq70o0imme4Kos2pnRx5d4UEtZkedfcn2AfcE3YBQL9HqEeoYbBHNxIJkvYOhbC"
    "vYftZUe1THDu9ogtJFHzXT2/KtmY1tZ0wzRm6rjpkdxlBjQ90uvuL7zA+wtdEnPTmTQFGL"
    "hQt+Ai9SMwx1od1l3WcquylsyDzja+yZ5X60LpglC6y6U9Uy6tu5hTCv0L4SgFN8YLbuJs"
    "UXJle4f1kVzKVrG+a2FZvqOV0r6wvFeD97mqak3iF7TOPJU33MHYjFoqFaiCtR5BMz0yE7"
    "776m/kVu1yt0QA8yfAlFwydcXCQwanZhfzVunfug18tD/a92ypzyjwwn8Q/COBkuE/mIDm"
    "Drb0mjnCmP11f7C3R75+JUnciU9o8BUmQm3qYsI0mMgE2vxoyxmV8Ik5HgF2GZDPv3gE0G"
    "SuJGCfOrvkNtyXvFuwb3JPctuQJBISbhPVDHZE9XYMLcWlEzaDhUK4JBb/xLDybWbY9KTx"
    "neg1e5G6esK+Q08X4vWET2EVkPAHWPANVAIXaDPYmBKmBjz06wghvtKcT131HRFVdeFimt"
    "gO8J4oAFjI0QmdwnqZ4ndMAYGb/1xALwT2G/oAJsjo+lJBaZGdsXClgDGNigwxh+XGpQLV"
    "exJvR/BQLR3F1iPw4ezXsYWOvr9E+h5N+2ZjkNZaTwz+pxmKBPpo2TUJHCOdLmTc6pCxS9"
    "l0KZvvjvaaUzYluZqqbaJ9vznwzFtEFJ82SJGlVVoD+zflxraEeg6Zy42ZVkA6w5JKukmT"
    "Opv8WkKjKP3PEqJ/Y2a2PPgGzt30V7ZSKi3csvqHh3WStIeH5VlaLMs6UVxUDRAOq7cQ3Y"
    "38fDBYlIU3pH+6GV2VhQWxSp7HcEOSr8Ti3ks8yKkAF8HIkJcI053L4f/ycJ9ejE7yrAQb"
    "OPnem9nD/wHkJ0e4"
)
