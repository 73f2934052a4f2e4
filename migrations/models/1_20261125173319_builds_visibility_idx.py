from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        -- Added by hand (models unchanged: MODELS_STATE copied from 0_*_init): the exact
        -- COUNT(*) behind GET /builds `total` (no filter, or is_template) reads this small
        -- deduplicated index instead of builds_newest_idx or the whole table (bench/results/plans.md:
        -- 100k builds, count 10-19 ms -> ~7 ms; is_template=false was a seq scan).
        CREATE INDEX IF NOT EXISTS "builds_visibility_idx" ON "builds" ("is_public", "is_template");"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP INDEX IF EXISTS "builds_visibility_idx";"""


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
