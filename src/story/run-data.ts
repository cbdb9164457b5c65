/**
 * Agent runs as rows: what every place that records a trajectory writes.
 */
import type { RunRecord } from "../agent/types.ts";

/** An agent run as an AgentRun row (a FireAct trajectory). */
export function runData(storyId: string, chapterId: string | null, run: RunRecord) {
  return {
    storyId,
    chapterId,
    task: run.task,
    method: run.method,
    model: run.model,
    baseUrl: run.baseUrl,
    fineTuned: run.fineTuned,
    promptVersion: run.promptVersion,
    messages: run.messages as unknown as object,
    tools: run.tools as unknown as object,
    promptTokens: run.promptTokens,
    completionTokens: run.completionTokens,
    costUsd: run.costUsd,
    latencyMs: Math.round(run.latencyMs),
    status: run.status,
    error: run.error ?? "",
    checks: run.checks as object,
  };
}
