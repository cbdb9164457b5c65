-- CreateTable
CREATE TABLE "Counter" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "count" INTEGER NOT NULL DEFAULT 0,
    "takenAt" DATETIME NOT NULL,
    "expiresAt" DATETIME
);

-- AlterTable (written by hand: `migrate diff` redefines the whole table, which an
-- added column with a default does not need)
ALTER TABLE "Workspace" ADD COLUMN "settingsRevision" INTEGER NOT NULL DEFAULT 0;

-- CreateIndex
CREATE INDEX "Counter_expiresAt_idx" ON "Counter"("expiresAt");
