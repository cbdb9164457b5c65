/** Measuring prompt text: CJK detection and a rough token count (memory and lore share them). */

const CJK_CHAR = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]/u;
const CJK_GLOBAL = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]/gu;

/** Whether the text contains CJK characters. */
export function hasCjk(text: string): boolean {
  return CJK_CHAR.test(text);
}

/** Rough token count: ~1 token per CJK character, ~4 characters per token otherwise. */
export function estimateTokens(text: string): number {
  const cjk = text.match(CJK_GLOBAL)?.length ?? 0;
  return cjk + Math.ceil((text.length - cjk) / 4);
}
