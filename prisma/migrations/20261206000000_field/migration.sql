-- AlterTable
ALTER TABLE "Chapter" ADD COLUMN "progress" JSONB;
ALTER TABLE "Chapter" ADD COLUMN "needsRepair" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "StructuredStrategy" (
    "routeKey" TEXT NOT NULL PRIMARY KEY,
    "strategy" TEXT NOT NULL,
    "reason" TEXT NOT NULL DEFAULT '',
    "updatedAt" DATETIME NOT NULL
);
