// A Nova auto-tagger in JavaScript: tags a document with its longest words.
//
// Build: npx componentize-js tagger.js --wit ../../wit --world-name auto-tagger \
//          --disable http fetch-event -o js_tagger.wasm
import { get } from "nova:plugin/config@0.1.0";
import { write } from "nova:plugin/log@0.1.0";

export function suggest(title, text) {
  const words = [...new Set(text.split(/\s+/).map((w) => w.replace(/[.,;:!?"'()]/g, "").toLowerCase()))]
    .filter((w) => w.length > 0);
  if (words.length === 0) {
    // A thrown value is the call's error, reported as the plugin's own message.
    throw "there is no text to tag";
  }
  const count = Number(get("tags") ?? 3);
  words.sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  write("info", `tagging ${JSON.stringify(title)}: ${words.length} distinct words`);
  return { tags: words.slice(0, count).map((name) => ({ name, confidence: 0.5 })), categories: [] };
}
