-- AlterTable
ALTER TABLE "Story" ADD COLUMN     "remixOfChapter" INTEGER,
ADD COLUMN     "remixOfId" TEXT,
ADD COLUMN     "shareCode" TEXT,
ADD COLUMN     "shareRevokedAt" TIMESTAMP(3);

-- AlterTable
ALTER TABLE "Chapter" ADD COLUMN     "authorNote" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "state" JSONB;

-- AlterTable
ALTER TABLE "Character" ADD COLUMN     "card" JSONB;

-- AlterTable
ALTER TABLE "LoreEntry" ADD COLUMN     "constant" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "order" INTEGER NOT NULL DEFAULT 100,
ADD COLUMN     "source" TEXT NOT NULL DEFAULT 'reader',
ADD COLUMN     "themeId" TEXT,
ADD COLUMN     "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ALTER COLUMN "storyId" DROP NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "Story_shareCode_key" ON "Story"("shareCode");

-- CreateIndex
CREATE INDEX "LoreEntry_themeId_idx" ON "LoreEntry"("themeId");

-- AddForeignKey
ALTER TABLE "Story" ADD CONSTRAINT "Story_remixOfId_fkey" FOREIGN KEY ("remixOfId") REFERENCES "Story"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "LoreEntry" ADD CONSTRAINT "LoreEntry_themeId_fkey" FOREIGN KEY ("themeId") REFERENCES "Theme"("id") ON DELETE CASCADE ON UPDATE CASCADE;

