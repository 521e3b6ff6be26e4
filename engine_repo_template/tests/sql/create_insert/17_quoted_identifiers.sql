CREATE TABLE "my table"("a b", [c], `d`);
INSERT INTO "my table" VALUES (1, 2, 3);
SELECT "a b", c, d FROM "my table";
