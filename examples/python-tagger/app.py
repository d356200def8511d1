"""A Nova auto-tagger in Python: tags a document with its longest words.

Build: componentize-py -d ../../wit -w auto-tagger componentize app -o python_tagger.wasm
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log
from wit_world.imports.types import Scored, Tagging


class WitWorld(wit_world.WitWorld):
    def suggest(self, title: str, text: str) -> Tagging:
        words = {w.strip(".,;:!?\"'()").lower() for w in text.split()}
        words.discard("")
        if not words:
            # An `Err` is the call's error, reported as the plugin's own message.
            raise Err("there is no text to tag")
        count = int(config.get("tags") or 3)
        longest = sorted(words, key=lambda w: (-len(w), w))[:count]
        log.write(log.Level.INFO, f"tagging {title!r}: {len(words)} distinct words")
        return Tagging(tags=[Scored(name=w, confidence=0.5) for w in longest], categories=[])
