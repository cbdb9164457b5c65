-- AlterTable
ALTER TABLE "Character" ADD COLUMN "portraitId" TEXT;

-- CreateTable
CREATE TABLE "Illustration" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "storyId" TEXT NOT NULL,
    "chapterId" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "scene" TEXT NOT NULL,
    "characters" JSONB NOT NULL,
    "prompt" TEXT NOT NULL DEFAULT '',
    "caption" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL DEFAULT '',
    "baseUrl" TEXT NOT NULL DEFAULT '',
    "size" TEXT NOT NULL DEFAULT '',
    "file" TEXT NOT NULL DEFAULT '',
    "mime" TEXT NOT NULL DEFAULT '',
    "referenced" BOOLEAN NOT NULL DEFAULT false,
    "error" TEXT NOT NULL DEFAULT '',
    "messageRef" TEXT NOT NULL DEFAULT '',
    "requestedById" TEXT,
    "requestKey" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Illustration_storyId_fkey" FOREIGN KEY ("storyId") REFERENCES "Story" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Illustration_chapterId_fkey" FOREIGN KEY ("chapterId") REFERENCES "Chapter" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- AlterTable
ALTER TABLE "Story" ADD COLUMN "artStyle" TEXT NOT NULL DEFAULT '';

-- CreateIndex
CREATE UNIQUE INDEX "Illustration_requestKey_key" ON "Illustration"("requestKey");

-- CreateIndex
CREATE INDEX "Illustration_storyId_idx" ON "Illustration"("storyId");

-- CreateIndex
CREATE INDEX "Illustration_chapterId_idx" ON "Illustration"("chapterId");

-- CreateIndex
CREATE INDEX "Illustration_status_idx" ON "Illustration"("status");

-- CreateIndex
CREATE INDEX "Illustration_requestedById_createdAt_idx" ON "Illustration"("requestedById", "createdAt");

