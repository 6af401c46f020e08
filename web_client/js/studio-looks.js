// The shipped looks and their brand guardrails: which expressions and gestures each allows.
// A copy of the [guardrails] of media/avatar/looks/*.toml|json (tests/browser/test_studio.py
// checks that they agree). A host_status that carries `expressions` / `gestures` wins over it.
//
// Keyboard shortcuts are fixed per name (the same key whatever the look): digits for
// expressions in the rig's order, letters for gestures.

export const LOOKS = {
  "aurora": {
    "name": "Aurora",
    "expressions": ["neutral", "smile", "laugh", "surprise", "thinking", "concerned"],
    "gestures": ["nod", "shake", "wave"]
  },
  "harbor": {
    "name": "Harbor",
    "expressions": ["neutral", "smile", "concerned", "thinking"],
    "gestures": ["nod", "wave"]
  }
};

export const EXPRESSION_KEYS = {
  neutral: "1",
  smile: "2",
  laugh: "3",
  surprise: "4",
  sad: "5",
  thinking: "6",
  concerned: "7",
};

export const GESTURE_KEYS = { nod: "N", shake: "S", wave: "W" };

/** The guardrails of `look` (its name), or of the first shipped look for an unknown one. */
export function guardrails(look) {
  return LOOKS[look] || { name: look, expressions: ["neutral"], gestures: [] };
}
