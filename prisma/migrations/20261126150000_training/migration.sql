-- CreateTable
CREATE TABLE "ModelRoute" (
    "task" TEXT NOT NULL PRIMARY KEY,
    "model" TEXT NOT NULL,
    "baseUrl" TEXT NOT NULL,
    "fineTuned" BOOLEAN NOT NULL DEFAULT false,
    "source" TEXT NOT NULL DEFAULT 'cli',
    "updatedAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "FineTuneJob" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "providerJobId" TEXT NOT NULL,
    "baseUrl" TEXT NOT NULL,
    "baseModel" TEXT NOT NULL,
    "trainingFileId" TEXT NOT NULL,
    "validationFileId" TEXT NOT NULL DEFAULT '',
    "status" TEXT NOT NULL,
    "fineTunedModel" TEXT NOT NULL DEFAULT '',
    "task" TEXT NOT NULL,
    "error" TEXT NOT NULL DEFAULT '',
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "HeldoutState" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "storyId" TEXT NOT NULL,
    "chapterId" TEXT NOT NULL,
    "task" TEXT NOT NULL,
    "input" JSONB NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- AlterTable
ALTER TABLE "AgentRun" ADD COLUMN "fineTuned" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE UNIQUE INDEX "FineTuneJob_providerJobId_key" ON "FineTuneJob"("providerJobId");

-- CreateIndex
CREATE UNIQUE INDEX "HeldoutState_chapterId_key" ON "HeldoutState"("chapterId");

-- CreateIndex
CREATE INDEX "HeldoutState_storyId_idx" ON "HeldoutState"("storyId");

