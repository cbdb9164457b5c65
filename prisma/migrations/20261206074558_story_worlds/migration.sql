-- AlterTable
ALTER TABLE "Character" ADD COLUMN "card" JSONB;

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Story" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL,
    "conversationId" TEXT NOT NULL,
    "premise" TEXT NOT NULL,
    "genre" TEXT NOT NULL DEFAULT 'none',
    "themeId" TEXT,
    "title" TEXT NOT NULL DEFAULT '',
    "language" TEXT NOT NULL DEFAULT 'en',
    "rating" TEXT NOT NULL DEFAULT 'general',
    "status" TEXT NOT NULL DEFAULT 'active',
    "bible" JSONB NOT NULL,
    "arc" JSONB NOT NULL,
    "headChapterId" TEXT,
    "chapterLength" TEXT NOT NULL DEFAULT 'medium',
    "revision" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    "artStyle" TEXT NOT NULL DEFAULT '',
    "shareCode" TEXT,
    "shareRevokedAt" DATETIME,
    "remixOfId" TEXT,
    "remixOfChapter" INTEGER,
    CONSTRAINT "Story_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Story_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Story_themeId_fkey" FOREIGN KEY ("themeId") REFERENCES "Theme" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "Story_headChapterId_fkey" FOREIGN KEY ("headChapterId") REFERENCES "Chapter" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "Story_remixOfId_fkey" FOREIGN KEY ("remixOfId") REFERENCES "Story" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_Story" ("arc", "artStyle", "bible", "chapterLength", "conversationId", "createdAt", "genre", "headChapterId", "id", "language", "ownerId", "premise", "rating", "revision", "status", "themeId", "title", "updatedAt", "workspaceId") SELECT "arc", "artStyle", "bible", "chapterLength", "conversationId", "createdAt", "genre", "headChapterId", "id", "language", "ownerId", "premise", "rating", "revision", "status", "themeId", "title", "updatedAt", "workspaceId" FROM "Story";
DROP TABLE "Story";
ALTER TABLE "new_Story" RENAME TO "Story";
CREATE UNIQUE INDEX "Story_headChapterId_key" ON "Story"("headChapterId");
CREATE UNIQUE INDEX "Story_shareCode_key" ON "Story"("shareCode");
CREATE INDEX "Story_ownerId_updatedAt_idx" ON "Story"("ownerId", "updatedAt");
CREATE INDEX "Story_conversationId_idx" ON "Story"("conversationId");
CREATE TABLE "new_Chapter" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "storyId" TEXT NOT NULL,
    "parentId" TEXT,
    "number" INTEGER NOT NULL,
    "task" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "action" TEXT NOT NULL DEFAULT '',
    "direction" TEXT NOT NULL DEFAULT '',
    "rewriteOfId" TEXT,
    "title" TEXT NOT NULL DEFAULT '',
    "text" TEXT NOT NULL DEFAULT '',
    "summary" TEXT NOT NULL DEFAULT '',
    "rollingSummary" TEXT NOT NULL DEFAULT '',
    "bibleUpdates" JSONB NOT NULL,
    "arc" JSONB,
    "error" TEXT NOT NULL DEFAULT '',
    "messageRefs" JSONB NOT NULL,
    "progress" JSONB,
    "authorNote" TEXT NOT NULL DEFAULT '',
    "state" JSONB,
    "needsRepair" BOOLEAN NOT NULL DEFAULT false,
    "requestedById" TEXT,
    "requestKey" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Chapter_storyId_fkey" FOREIGN KEY ("storyId") REFERENCES "Story" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Chapter_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "Chapter" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_Chapter" ("action", "arc", "bibleUpdates", "createdAt", "direction", "error", "id", "messageRefs", "needsRepair", "number", "parentId", "progress", "requestKey", "requestedById", "rewriteOfId", "rollingSummary", "status", "storyId", "summary", "task", "text", "title", "updatedAt") SELECT "action", "arc", "bibleUpdates", "createdAt", "direction", "error", "id", "messageRefs", "needsRepair", "number", "parentId", "progress", "requestKey", "requestedById", "rewriteOfId", "rollingSummary", "status", "storyId", "summary", "task", "text", "title", "updatedAt" FROM "Chapter";
DROP TABLE "Chapter";
ALTER TABLE "new_Chapter" RENAME TO "Chapter";
CREATE UNIQUE INDEX "Chapter_requestKey_key" ON "Chapter"("requestKey");
CREATE INDEX "Chapter_storyId_number_idx" ON "Chapter"("storyId", "number");
CREATE INDEX "Chapter_status_idx" ON "Chapter"("status");
CREATE INDEX "Chapter_requestedById_createdAt_idx" ON "Chapter"("requestedById", "createdAt");
CREATE TABLE "new_LoreEntry" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "storyId" TEXT,
    "themeId" TEXT,
    "keys" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "constant" BOOLEAN NOT NULL DEFAULT false,
    "order" INTEGER NOT NULL DEFAULT 100,
    "source" TEXT NOT NULL DEFAULT 'reader',
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "LoreEntry_storyId_fkey" FOREIGN KEY ("storyId") REFERENCES "Story" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "LoreEntry_themeId_fkey" FOREIGN KEY ("themeId") REFERENCES "Theme" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_LoreEntry" ("content", "createdAt", "id", "keys", "storyId") SELECT "content", "createdAt", "id", "keys", "storyId" FROM "LoreEntry";
DROP TABLE "LoreEntry";
ALTER TABLE "new_LoreEntry" RENAME TO "LoreEntry";
CREATE INDEX "LoreEntry_storyId_idx" ON "LoreEntry"("storyId");
CREATE INDEX "LoreEntry_themeId_idx" ON "LoreEntry"("themeId");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

