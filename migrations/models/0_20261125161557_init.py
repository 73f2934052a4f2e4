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
CREATE INDEX IF NOT EXISTS "search_events_batch_idx" ON "search_events" ("batch_id");
COMMENT ON TABLE "search_events" IS 'One recorded search, as accepted by a worker (event time, not flush time).';
CREATE TABLE IF NOT EXISTS "search_rollups" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "hour" TIMESTAMPTZ NOT NULL,
    "query_norm" VARCHAR(500) NOT NULL,
    "search_mode" VARCHAR(8) NOT NULL,
    "count" BIGINT NOT NULL,
    "sessions" INT NOT NULL,
    CONSTRAINT "uid_search_roll_hour_dff63d" UNIQUE ("hour", "query_norm", "search_mode")
);
CREATE INDEX IF NOT EXISTS "search_rollups_hour_idx" ON "search_rollups" ("hour", "search_mode");
COMMENT ON TABLE "search_rollups" IS 'Searches per (normalised query, mode, hour); `count` only ever grows by batches.';
CREATE TABLE IF NOT EXISTS "search_rollup_sessions" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "hour" TIMESTAMPTZ NOT NULL,
    "query_norm" VARCHAR(500) NOT NULL,
    "search_mode" VARCHAR(8) NOT NULL,
    "session_id" VARCHAR(29) NOT NULL,
    CONSTRAINT "uid_search_roll_hour_e73ec0" UNIQUE ("hour", "query_norm", "search_mode", "session_id")
);
COMMENT ON TABLE "search_rollup_sessions" IS 'Which sessions searched a key in an hour: exact distinct-session counts per window.';
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
ALTER TABLE "build_votes" ADD CONSTRAINT "build_votes_rating_ck" CHECK (rating BETWEEN 1 AND 5);
ALTER TABLE "feedback" ADD CONSTRAINT "feedback_rating_ck" CHECK (rating IN ('up', 'down'));
ALTER TABLE "feedback" ADD CONSTRAINT "feedback_mode_ck" CHECK (search_mode IN ('quick', 'smart', 'deep'));
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
    "eJztXG1v2zYQ/iuEPqWAG6SOnZduGGDnZcuaxEPstkOLQaUlxiYii6pIxTG6/PeR1PurpT"
    "RKbE1f2ujI40mPjsfnjpR/KAuiI4PuDh1s6Mp78EMx4QLxP+INHaBAywrFQsDg1JA9p6KL"
    "FMEpZTbUGJfeQoMiLtIR1WxsMUxMLjUdwxBCovGO2JyFIsfE3x2kMjJDbI5s3vD1Hy7Gpo"
    "4eEBWXP5RbjIQh/reCqWo5UwNrwqxmI8iQrkImruTtqFhXhD56sGxEKbdO/SH9B3RvWzXR"
    "ElHG+z/Ih1pZslGRuvxh5MVjB+RbvycMqRpxTPbT92IRyzGgXe1mLBsvoL1Soa3NkVQpac"
    "zTq2SMIo2Y+lPMhZqVDHJ3KmtBdK02uGZAyj1ADFPOhKtQ1VcYWlgG94qSRvzu1eyQpYls"
    "jrIcuqQlV6fYjFCz7lRpKRYgAt/mHWSr6o9wMof2uewv5vqUTw7DWZhJHWvF5sQMlHhAEN"
    "IZ4rckZlAkhogQ4QUbX+SGCy5gtoOCOKGHAh3dQsdgkZgzVUOZoqrXo4k6PpuoqlIhSnEX"
    "FhEOm4xKLBbwQTWQOWNzfvlu79G1E6Lh9hIGPw1uTv4Y3Oy823sjDBLurG70vPZaurLpUQ"
    "4BGVTDVxtCLv+vALff/3mg9gUh1mGQfwWwy6FdBLeHd4hv9M4qwJxQexLanttuJtjdvVJo"
    "i265cLuNcbzTS1cF1DOVm+jpB2Uc/SDfzw+SsGct4hWAz1FvoS8BfYRxVEA8rtVAoPe7JY"
    "De7+YCLZriQEveWAFiv38DwX1+L47lP3GEh4QYCJrZIMf0EkhPuWJdUPucsAaoC6AdjkaX"
    "YuQFpd8NKbiYJDD+eDU849hL6HknzKT44nqSBjxIIipDHtV8QdADydaiHk+pKgSTlGIDKe"
    "FxGUJ4nE8Hj9MRm3HzKnUWaagvTJYXtqNKCZixW5Kpw7n36gJ5Ju7gbfdd77B3tH/QO+Jd"
    "5F0GksMC3NMuHC9OlQQ1rtSCmgQ1XuOLg3rKWxheoBwiF9NMIKt7qrv+H9vIPPgD6iPTWH"
    "nxqwDXycXV2XgyuPorFq1PB5Mz0dKV0lVCupNkKcEg4PPF5A8gLsGX0fWZhJdQNrOlxbDf"
    "5IuonCnQYUQ1yVKFeqRo5Et91GJv3bH0J771uGb71jflrfsYRV67vHtR8ry9i1TghGAKtb"
    "sltHU11hKPtDSDnHlq5x9uECdh2XwgutfyibBtdIFH3+l9aRRM0iV5aKabFt1FUgJNOJOP"
    "JGwLSynA8naufDTX7F6pwdt73i2sr+7wkmi6bFBuBhXtbOVsIHV8rlOqtO8+j2ohGxP9qQ"
    "X+rNL+EM9yaUNmWT+DLnjBdnOr+i5dOO529/cPu3v7B0f93uFh/2gv4A3ppiICMbz4XXCI"
    "WATzSUV+rT/iL6m3UFSbi2o1sJhRV96RBnm8gIaxJvF4WX5cv8/vdw8PAi8XF0V+Pb4aXF"
    "627Lj5PKkMO96M3eDXfr817AenyGgC8zTg58RGeGZ+QCsJ+wW/RWhmVreTZ3y2DO48zim5"
    "0jJgNDE/40/Pnxm5Jb+TwfhkcHrmcqBsgl8nfT1HSBcjZbHXoK2QvN5Ge73Y4SsbaQjfB4"
    "G6HC/1b1UNtJ9IS4OBqgWbhFp7+iQz2hQxUv7I9qoK5IFCI4N72QMohSdQUkci+PSxuF2k"
    "UhNbFsrgUAV7mBm6DYS+Xwr5fgHw/TTuFInDDKqIsdXyrZhaA9E+KoH1US7SR2WzraKd+Z"
    "xMqwno9kqg28tFt5c6XkIWC5S111NwtiRUad4uZV1Rui3OvFRxJk41q1QTEqptOWHTywkV"
    "tl1qzcoMh84vyUzJysr8tk5hViZ6qYbXbV1apoxMBGyyBBaygYjGmHEPBPz2jBXDGgVTyL"
    "T5ewCBjbg/8CYpAJhygUZmJqayuw7onaB9+q6S8J56LKxPGvM/HRDDZwbPjx8vTnOKRRGd"
    "xFx2HKzvCs16Ujjl11vH1MTbAtKS+Kf3m1LTpC6YxO4pSHdWRuebfPTi3A3dIzF+Cu/c+n"
    "ao0KT69rMdAZFT/EnLUlyzXZXaVanUqjSWieaZmJVZC1O0uXBt8hLWcHqXXJ/4OmDrfBVw"
    "9TsAUgA1DVliIZmu+NKxJPYdX1525MhA+G4HmIQB6e/y+k3OwvRsQ1csY0a2m9bULmOgqb"
    "5epc/zguWrkilfq92/37r9+7ZaWnfJTgLGY7WdcWB4DcyBVot1Wx7dqPIoovxmK5/YTqq1"
    "nD2Ds7dFuxcq2rUngHKh35JkKONkdMaRnw2q4mzua11TtNmo9PKGGIZjKbn5pdfeKZFg2r"
    "JryQzTHR1RWaDcEdwMGrLmKMlaBwgzHTAnjv3mF/BNrnLfADGNFeB5kg1mNllSkSpK70I0"
    "nWfWYSDzuLcYQjTGWWaUBhUe/vbVYwqdMgmjh7cqRmgTxm1MGP13X2W99HXalXKjV8o2U2"
    "0z1VdH+5kz1ZwUtWi9aN4nxS+yZKQy2Cr7eFGVxsD+UyWBDWTcY++XItYQ73H4gxIl+bca"
    "ff3refjnOdbmwNfxNmTE1j+4QyuATQBNSZLfA/TABwI6pgybGnvrqQA5w12WveT+QZZpKl"
    "6TjSey8U7hh5ktU26Z8uYv8y1Tbplyy5Q3lym3+w417jtsCJsbIJvTmiwC57UUcjYY9qnz"
    "I75KdOb/wmV+cnsxn6XcI7vq78ZFVJo44fv9MjO+38+f8qItHlzFpKqAsNe9gejW8oPY3C"
    "LL/J7oz/HoOq/IE6gkuTbm6dy/wOAJ3RaiXQCuACNGsH1Md64GfyfhPrkcDZPMWQwwfO3F"
    "7PE/doMDPw=="
)
