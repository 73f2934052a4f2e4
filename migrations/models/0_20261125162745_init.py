from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE IF NOT EXISTS "builds" (
    "build_id" VARCHAR(10) NOT NULL PRIMARY KEY,
    "name" VARCHAR(100) NOT NULL,
    "description" VARCHAR(2000),
    "primary_archetype" VARCHAR(16) NOT NULL,
    "secondary_archetype" VARCHAR(16) NOT NULL,
    "class_name" VARCHAR(32) NOT NULL,
    "race" VARCHAR(16) NOT NULL,
    "is_public" BOOL NOT NULL,
    "is_template" BOOL NOT NULL,
    "owner_session" VARCHAR(29),
    "rating_sum" INT NOT NULL,
    "vote_count" INT NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS "builds_newest_idx" ON "builds" ("is_public", "created_at", "build_id");
CREATE INDEX IF NOT EXISTS "builds_popular_idx" ON "builds" ("is_public", "vote_count", "created_at", "build_id");
CREATE INDEX IF NOT EXISTS "builds_primary_idx" ON "builds" ("primary_archetype");
CREATE INDEX IF NOT EXISTS "builds_secondary_idx" ON "builds" ("secondary_archetype");
CREATE INDEX IF NOT EXISTS "builds_race_idx" ON "builds" ("race");
CREATE INDEX IF NOT EXISTS "builds_class_idx" ON "builds" ("class_name");
CREATE INDEX IF NOT EXISTS "builds_template_idx" ON "builds" ("is_template");
CREATE INDEX IF NOT EXISTS "builds_owner_idx" ON "builds" ("owner_session");
CREATE TABLE IF NOT EXISTS "build_votes" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "session_id" VARCHAR(29) NOT NULL,
    "rating" SMALLINT NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "build_id" VARCHAR(10) NOT NULL REFERENCES "builds" ("build_id") ON DELETE CASCADE,
    CONSTRAINT "uid_build_votes_build_i_e38441" UNIQUE ("build_id", "session_id")
);
CREATE INDEX IF NOT EXISTS "build_votes_period_idx" ON "build_votes" ("created_at", "build_id", "rating");
CREATE TABLE IF NOT EXISTS "feedback" (
    "feedback_id" VARCHAR(10) NOT NULL PRIMARY KEY,
    "query" VARCHAR(1000) NOT NULL,
    "response_snippet" VARCHAR(500) NOT NULL,
    "search_mode" VARCHAR(8) NOT NULL,
    "rating" VARCHAR(4) NOT NULL,
    "comment" VARCHAR(1000),
    "session_id" VARCHAR(29) NOT NULL,
    "received_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS "feedback_received_idx" ON "feedback" ("received_at", "rating");
CREATE TABLE IF NOT EXISTS "flush_log" (
    "batch_id" UUID NOT NULL PRIMARY KEY,
    "events" INT NOT NULL,
    "flushed_at" TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE "flush_log" IS 'One row per committed analytics batch: a retried batch is recognised and skipped.';
CREATE TABLE IF NOT EXISTS "search_events" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "query" VARCHAR(500) NOT NULL,
    "query_norm" VARCHAR(500) NOT NULL,
    "search_mode" VARCHAR(8) NOT NULL,
    "result_count" INT NOT NULL,
    "session_id" VARCHAR(29) NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "batch_id" UUID NOT NULL
);
CREATE INDEX IF NOT EXISTS "search_events_created_idx" ON "search_events" ("created_at");
COMMENT ON TABLE "search_events" IS 'One recorded search, as accepted by a worker (event time, not flush time).';
CREATE TABLE IF NOT EXISTS "search_rollups" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "key_hash" BIGINT NOT NULL UNIQUE,
    "hour" TIMESTAMPTZ NOT NULL,
    "query_norm" VARCHAR(500) NOT NULL,
    "search_mode" VARCHAR(8) NOT NULL,
    "count" BIGINT NOT NULL,
    "sessions" INT NOT NULL
);
CREATE INDEX IF NOT EXISTS "search_rollups_hour_idx" ON "search_rollups" ("hour", "search_mode");
COMMENT ON TABLE "search_rollups" IS 'Searches per (normalised query, mode, hour); `count` only ever grows by batches.';
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);
-- Added by hand (aerich does not emit these): CHECK constraints, the derived rating
-- average used by sort=rating, and trigram indexes for the case-insensitive search.
ALTER TABLE "builds" ADD CONSTRAINT "builds_tally_ck" CHECK (rating_sum >= 0 AND vote_count >= 0);
ALTER TABLE "builds" ADD COLUMN "rating_avg" DOUBLE PRECISION NOT NULL
    GENERATED ALWAYS AS (CASE WHEN vote_count > 0 THEN rating_sum::float8 / vote_count ELSE 0 END) STORED;
CREATE INDEX IF NOT EXISTS "builds_rating_idx" ON "builds" ("is_public", "rating_avg", "vote_count", "build_id");
-- popular builds, period=all: rating sum, then vote_count, then newest.
CREATE INDEX IF NOT EXISTS "builds_top_idx" ON "builds" ("is_public", "rating_sum", "vote_count", "created_at", "build_id");
-- The vote aggregator recomputes tallies from build_votes: index-only per build.
CREATE INDEX IF NOT EXISTS "build_votes_tally_idx" ON "build_votes" ("build_id", "rating");
ALTER TABLE "build_votes" ADD CONSTRAINT "build_votes_rating_ck" CHECK (rating BETWEEN 1 AND 5);
ALTER TABLE "feedback" ADD CONSTRAINT "feedback_rating_ck" CHECK (rating IN ('up', 'down'));
ALTER TABLE "feedback" ADD CONSTRAINT "feedback_mode_ck" CHECK (search_mode IN ('quick', 'smart', 'deep'));
-- Distinct sessions per rollup key (no ORM model: composite key, aggregator SQL only).
CREATE TABLE IF NOT EXISTS "search_rollup_sessions" (
    "key_hash" BIGINT NOT NULL,
    "session_hash" BIGINT NOT NULL,
    PRIMARY KEY ("key_hash", "session_hash")
);
CREATE EXTENSION IF NOT EXISTS pg_trgm;
-- Same expression as Tortoise's icontains filter, so the planner can use the index.
CREATE INDEX IF NOT EXISTS "builds_name_trgm_idx" ON "builds"
    USING gin ((UPPER(CAST("name" AS VARCHAR))) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS "builds_description_trgm_idx" ON "builds"
    USING gin ((UPPER(CAST("description" AS VARCHAR))) gin_trgm_ops);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        """


MODELS_STATE = (
    "eJztXG1T27gW/isaf1k6k7I0EKB7X2YCpbvsAtkLae+dbu8YxRaJBsfySnLTTMt/3yP5/R"
    "WbEhqynumUWNLRkR8dHT3nSMkXY85s4ojtI586tvET+mK4eE7gQ7aihwzseUmxKpB44uiW"
    "E9VEF+GJkBxbEkpvsCMIFNlEWJx6kjIXSl3fcVQhs6AhdadJke/SP31iSjYlckY4VPzxfy"
    "imrk0+E6Eevxg3lChF8NmgwvT8iUMtpdbiBEtim1iqJz0ck9qGkiefPU6EAO0i6jJ6wWDY"
    "pksWREho/1m/1NLTlYaWhZfRD3c9VK39E5PEtJjvym8ei8c838G83WA8TueYL03MrRnRIg"
    "2VhXKtlAliMdd+iLpEspVCMKemGlTTdp1bDhZgAaqbZioCgba2Isncc8AqGiqJmrfTwxYu"
    "4YCy7rqhpkCmXo0S825NrSnjIGLbhga61ox6OJ5h/la3V2t9AovD8eduXsZbyhlzYyFwCK"
    "p0SmBIagWlfIhyEaGziYoCdwEFkvsk9hN2UmCTG+w7MuVzJmZSZpjmxWhsXp2MTdNo4aXA"
    "hJWHo64UGos5/mw6xJ3KGTy+2rkL9CRoBK2UwvfDy+Nfhpdbr3ZeKIUMjDXwnhdhTV9X3e"
    "kusMRmMrUJ5PpvC7ij9o8DdVSQYJ04+e8AdjO06+AO8U7wTY+sBcw5sQehHZrteoLd32mE"
    "tmpWCXdQmcW7uHW1QL1UeBMtfb+Joe9X2/l+HvayTbwF8BXiHfQNoE8xjhaIZ6U2EOjdfg"
    "Ogd/uVQKuqLNCaN7aAOGq/geA+vhVn4p8swkeMOQS75SBn5HJIT0BwVVBHnHAFUNdAezQa"
    "name50L86eiC03EO43fnRyeAvYYeGlGpi08vxkXA4yCiNeRpyScEPS55tqhnQ6oWzqQguI"
    "GU8HUTQvi6mg6+LnpsCepN4c+LUJ+6ssptp4VyMNMgJbMK495ZFchTNYKX/Vd7B3uHu/t7"
    "h9BEjzIuOajBvWjC2eRUQ1CzQh2oeVCzOb4sqG+gRtI5qSByGckcsnYouh19eI7MA17QHr"
    "nOMvRfNbiOT89PrsbD898z3vrNcHyiavq6dJkr3cqzlLgT9N/T8S9IPaIPo4sTDS8Tcsq1"
    "xqTd+IPKnBnYl8x02cLEdippFJVGqGVm3ffsB856VrKb9XWZ9Qij1LTr0auU581tKgOnCi"
    "bYul1gbpuZmqynFSXkLBR7+9slARJWzgfSZy3vmXyOJnAXGX1UmgaT9VkVmsWqeX+eL8Eu"
    "nupXUrqVpgJgVSdXEZr3nF6Z8ew97hHWH0H3mmgGbFAfBtWdbFUcIPUirtMotR+8j+kRTp"
    "n90AR/WWr/iE4raUNpWr+ELoTOdn2z+gFdeN3v7+4e9Hd29w8HewcHg8OdmDcUq+oIxNHp"
    "z4pDZDxYRCqqc/0peynMQl1uLi21gcmMVcUdRZCv5thx7gk8npYfr97md/sH+7GVq4c6u7"
    "46H56ddex483lSE3a8HqfB33t+V3AeXCCjOcyLgL9lnNCp+xtZathPYYjYLc1u5+/4PDO4"
    "qzin5kqLmNFk7AzeHt6ZBCm/4+HV8fDNScCBygn+KunrW0Js1VMZe43rasnrTbrVk12+4s"
    "Qi9FPsqJvx0mioZiz9QFoad9TO2eTEutsnpd6mjpHCK/NlG8hjgY107k0voNTeQClciYDl"
    "44FeYgqXeh4p4VA1Z5glshsI/aAR8oMa4AdF3AVRlxlM5WPbxVsZsQ1E+7AB1oeVSB82jb"
    "bqTuYrIq1NQHevAbp7lejuFa6XsPmclJ311NwtSUQ275RyVV66S848VXImSzXbZBNyol06"
    "Yd3TCS2OXVYalTm+mJ2xqVEWlUV1vdqoTLUynbDZfWGZMXIJ4myBPMKR8sZUggUiGJ6zlN"
    "QSaIKlNfsJYcQJ2ANU6QJEBRRYbOpSoZvbSNwq2mdvGznrWY2G+4PG6q8OqO5Lnee7d6dv"
    "KpJFKZncWvZ9am8rydWEcMY/b3zXUrOFtCb1396/jRUt6ppFHNyCDFZler3pV6+P3cgnov"
    "ov4F2Z304ENim//WhXQPQSf9C2lJXsdqVuV2q0K13pQPNErcqyjSldXbs3hQFrsrwb7k+w"
    "D3AbdoFAvoewQNiyiKc2kskSto4F47ewvWzpnpGy3R5ymUTa3vXzi4qN6dG6bpnGTB033Z"
    "O7zIBmRnLdsfozPFbvkpirzqRpwMCF8pJ7vPfAHEt1WHdZy7XKWhIBg219kTov1lHpEird"
    "5dKeKJfWXcyphP6ZxCglF5ZLbuKsUXJlfaf1nlzKWkV9l8xxfM+oDPvC+l6DuI/rpg0Dv6"
    "B3InTecEtxM+zoVKAmaz2k1PTQjPn8xT/Qtd7lrhGDyB9BpMTRlLOFUBGcti4iiuHfYyv4"
    "6H50b8nSnGGIC/+F1B8JIZn6BwZob6meXhKPWbMfd/d3dtDXryjhnepJKXyhEqEu5iphGh"
    "gygj4/unKGJXwinkAQXQbB5w8CAZqESwT6sbeNrsN9SVyDfpsKSV1LoqgQURfpbtRA9GjH"
    "0FNcOyEzWCiISuTQT0Q1vs5Mm5l0vhW9Zi8S109q7DDSBXs5oVNYBSj8kQT1BjqBC2Ez6J"
    "gioic89OsKQvVKczrl+isKuumCqzSxG+A90QCQMEZHeArrZYol44DA1X/OYBRMjRvGACrQ"
    "6PJcQ+mgrTHjksGcRlUWm8Nyo1KDKh4UtyvwlFiaxTYL4EPrN1UPXfj+HMP3yOzbzUFa6n"
    "E4+N9mKhLoo2XXhjhGMh1lXGvK2KVsupTNd0f7kVM2Fbmaum1i877y/sRbRMRPW6TI0iIb"
    "A/s35cbWJPQcEk6tmVESdIY1teEmTtqs8msJrVj634Wif2Nmtpp8Q8zd9pdwUiIbuGX1B4"
    "MmSdrBoDpLq+qyTlQtqhYIh803EN2V/MQnaJSlN6R/vRpdVNGCWCQfx1BLoq/IoeI5HuTU"
    "gKvAyAQvEaZb58P/5eE+Phsd5aMS1cHR997M7v4Ctle/bQ=="
)
