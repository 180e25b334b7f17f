// Topics, filters, shared subscriptions and keys as NATS names: examples, and properties checked against a small
// NATS subject matcher written here and the codec's own topicMatches.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  filterSubjects,
  keyOf,
  levelToken,
  MAX_KEY,
  MAX_QUEUE,
  MAX_SUBJECT,
  sharedQueue,
  subjectTopic,
  tokenLevel,
  topicSubject,
} from "../../src/cluster/subjects.ts";
import { topicFilterProblem, topicMatches, topicNameProblem } from "../../src/codec/topic.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";
import { anyChar, fcParams, topicFilter, topicName } from "../codec/_arbitraries.ts";

// ---------------------------------------------------------------------------------------------------------------
// A reference for NATS subjects and FNV-1a, independent of the code under test.

/** Whether `pattern` (with `*` and `>`) receives messages published on `subject`, as nats-server decides. */
function natsMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Why `subject` is not a subject of ours (tokens of `A-Z a-z 0-9 _ - =`), or `undefined`. */
function subjectProblem(subject: string, wildcards: boolean): string | undefined {
  if (subject.length > MAX_SUBJECT) return `longer than ${MAX_SUBJECT}`;
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (wildcards && (token === "*" || (token === ">" && i === tokens.length - 1))) continue;
    if (!/^[A-Za-z0-9_=-]+$/.test(token)) return `token ${i} ${JSON.stringify(token)} is not valid`;
  }
  return undefined;
}

/** Whether `key` is a valid NATS key-value key (nats.js's validateKey) that is also one subject token. */
function validKey(key: string): boolean {
  return /^[-/=\w]+$/.test(key);
}

/** FNV-1a, 64 bits, with BigInt: the reference for the hash-based names. */
function fnvReference(bytes: Uint8Array): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash.toString(16).padStart(16, "0");
}

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: levels with every kind of character NATS or KV keys care about, lone surrogates included.

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const levelChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(..."aZ09_-") },
  {
    weight: 4,
    arbitrary: fc.constantFrom(".", "*", ">", "=", "$", " ", "\t", "\n", "ü", "😀", "\u00a0", "\\"),
  },
  { weight: 3, arbitrary: anyChar.filter((c) => c !== "/" && c !== "+" && c !== "#") },
  { weight: 1, arbitrary: loneSurrogate },
);
const level = fc.string({ unit: levelChar, maxLength: 8 });
const levels = fc.array(level, { minLength: 1, maxLength: 6 });
const anyLevel = fc.oneof(
  level,
  fc.string({ unit: "binary", maxLength: 20 }).filter((l) => !l.includes("/")),
);

/** Valid topic names: the codec's, ours with every special character, and some near or over MAX_SUBJECT. */
const topic: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: topicName },
  { weight: 4, arbitrary: levels.map((l) => l.join("/")) },
  {
    weight: 1,
    arbitrary: fc.tuple(levels, fc.integer({ min: MAX_SUBJECT - 40, max: MAX_SUBJECT + 5 }), levels)
      .map(([a, n, b]) => [...a, "y".repeat(n - 20), ...b].join("/")),
  },
).filter((t) => topicNameProblem(t) === undefined);

const ourFilter: fc.Arbitrary<string> = fc.tuple(
  fc.array(fc.oneof({ weight: 3, arbitrary: level }, { weight: 1, arbitrary: fc.constant("+") }), {
    maxLength: 5,
  }),
  fc.boolean(),
).map(([l, multi]) => (multi ? [...l, "#"] : l).join("/"));

/** Filters near MAX_SUBJECT: one long literal level among wildcards. */
const boundaryFilter: fc.Arbitrary<string> = fc.tuple(
  fc.array(fc.constantFrom("+", "a", "", "ü"), { maxLength: 3 }),
  fc.integer({ min: MAX_SUBJECT - 20, max: MAX_SUBJECT + 2 }),
  fc.array(fc.constantFrom("+", "b", ""), { maxLength: 3 }),
  fc.boolean(),
).map(([a, n, b, multi]) => {
  const l = [...a, "x".repeat(n - 8 - 2 * (a.length + b.length)), ...b];
  return (multi ? [...l, "#"] : l).join("/");
});

const filter: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: topicFilter },
  { weight: 4, arbitrary: ourFilter },
  { weight: 2, arbitrary: boundaryFilter },
).filter((f) => topicFilterProblem(f) === undefined);

/** A topic the filter matches (unless the `$` rule says otherwise): wildcards replaced by short levels. */
function topicOf(f: string): fc.Arbitrary<string> {
  const parts = f.split("/");
  const short = fc.oneof(fc.constantFrom("", "a", "=", "x.y", "b"), level);
  return fc.tuple(
    fc.array(short, { minLength: parts.length, maxLength: parts.length }),
    fc.array(short, { minLength: f === "#" ? 1 : 0, maxLength: 3 }),
  ).map(([fill, rest]) => {
    const out: string[] = [];
    parts.forEach((part, i) => {
      if (part === "+") out.push(fill[i]);
      else if (part === "#") out.push(...rest);
      else out.push(part);
    });
    return out.join("/");
  }).filter((t) => topicNameProblem(t) === undefined);
}

// ---------------------------------------------------------------------------------------------------------------

describe("levelToken() and tokenLevel()", () => {
  test("levelToken() keeps plain levels and escapes all others", () => {
    const cases: [string, string][] = [
      ["a", "a"],
      ["Temp_1-x", "Temp_1-x"],
      ["", "="],
      ["a.b", "=YS5i"],
      ["*", "=Kg"],
      [">", "=Pg"],
      [" ", "=IA"],
      ["ü", "=w7w"],
      ["$SYS", "=JFNZUw"],
      ["=", "=PQ"],
      ["+", "=Kw"],
      ["#", "=Iw"],
      ["\ud800", "=7aCA"], // a lone surrogate: its WTF-8 bytes ed a0 80
    ];
    for (const [l, token] of cases) {
      assert.equal(levelToken(l), token, JSON.stringify(l));
      assert.equal(tokenLevel(token), l, token);
    }
  });

  test("levelToken() refuses a level with '/'", () => {
    assert.throws(() => levelToken("a/b"), TypeError);
  });

  test("tokenLevel(levelToken(level)) is the level, and every token is a valid one", () => {
    fc.assert(
      fc.property(anyLevel, (l) => {
        const token = levelToken(l);
        assert.match(token, /^(?:[A-Za-z0-9_-]+|=[A-Za-z0-9_-]*)$/);
        assert.equal(tokenLevel(token), l);
      }),
      fcParams(2000),
    );
  });

  test("tokenLevel() refuses tokens no level maps to", () => {
    for (
      const token of [
        "", // empty
        "==", // the long-topic token
        "*",
        ">",
        "a.b",
        "a b",
        "a=",
        "=a", // 4n + 1 digits
        "=YQ", // "a" is plain: not in the form levelToken writes
        "=YR", // non-zero unused bits
        "=YQ=", // padding
        "=Lw", // "/" is no level
        "=w6", // a truncated two-byte sequence
        "=wK8", // an overlong "/"
        "=7aCA7bCA", // a surrogate pair as two three-byte sequences
        "=+A", // not base64url
        "é",
      ]
    ) {
      assert.throws(() => tokenLevel(token), TypeError, JSON.stringify(token));
    }
  });
});

describe("topicSubject() and subjectTopic()", () => {
  test("topicSubject() maps topics to subjects (examples)", () => {
    const cases: [string, string][] = [
      ["a/b", "mqtt.m.a.b"],
      ["a//b", "mqtt.m.a.=.b"],
      ["/a", "mqtt.m.=.a"],
      ["a/", "mqtt.m.a.="],
      ["/", "mqtt.m.=.="],
      ["a.b", "mqtt.m.=YS5i"],
      ["*", "mqtt.m.=Kg"],
      [">", "mqtt.m.=Pg"],
      [" ", "mqtt.m.=IA"],
      ["ü", "mqtt.m.=w7w"],
      ["$SYS/x", "mqtt.m.=JFNZUw.x"],
      ["==", "mqtt.m.=PT0"],
      ["x".repeat(60_000), "mqtt.m.=="],
      ["é".repeat(60_000), "mqtt.m.=="],
    ];
    for (const [t, subject] of cases) {
      assert.equal(topicSubject("mqtt", "m", t), subject, JSON.stringify(t.slice(0, 20)));
      const back = subjectTopic("mqtt", subject);
      assert.deepEqual(back, subject.endsWith(".==") ? undefined : { kind: "m", topic: t });
    }
  });

  test("topicSubject() gives the long-topic subject from one character over MAX_SUBJECT on", () => {
    const head = "mqtt.m.";
    const fits = "a/" + "x".repeat(MAX_SUBJECT - head.length - 2);
    assert.equal(topicSubject("mqtt", "m", fits).length, MAX_SUBJECT);
    assert.equal(topicSubject("mqtt", "m", fits + "x"), "mqtt.m.==");
    // An escaped level grows by a third: the topic is short, its subject is not.
    const escaped = "é".repeat(400);
    assert.ok(escaped.length < MAX_SUBJECT);
    assert.equal(topicSubject("mqtt", "m", escaped), "mqtt.m.==");
  });

  test("every valid topic maps to a valid subject and back", () => {
    fc.assert(
      fc.property(
        topic,
        fc.constantFrom("mqtt", "a.b-c", "$MQ"),
        fc.constantFrom("m", "q", "will"),
        (t, p, k) => {
          const subject = topicSubject(p, k, t);
          assert.ok(subject.startsWith(`${p}.${k}.`));
          assert.equal(subjectProblem(subject.slice(p.length + 1), false), undefined, subject);
          assert.ok(subject.length <= MAX_SUBJECT);
          if (subject === `${p}.${k}.==`) {
            assert.equal(subjectTopic(p, subject), undefined);
            // A plain level is its own token and an empty one is "=": such a topic is long only when that
            // much does not fit (a seed found "///" and 1,009 letters, 1,013 characters, one too many).
            const empty = t.split("/").filter((level) => level === "").length;
            assert.ok(
              /[^A-Za-z0-9_/-]/.test(t) || p.length + k.length + 2 + t.length + empty > MAX_SUBJECT,
              "only long topics are long",
            );
          } else {
            assert.deepEqual(subjectTopic(p, subject), { kind: k, topic: t });
          }
        },
      ),
      fcParams(2000),
    );
  });

  test("distinct topics give distinct subjects, unless both are long", () => {
    const similar = topic.chain((t) =>
      fc.tuple(
        fc.constant(t),
        fc.oneof(topic, fc.constantFrom(t + "/", "/" + t, t.replace(".", "/"), t + " ")),
      )
    );
    fc.assert(
      fc.property(similar, ([a, b]) => {
        fc.pre(a !== b && topicNameProblem(b) === undefined);
        const sa = topicSubject("mqtt", "m", a);
        const sb = topicSubject("mqtt", "m", b);
        if (sa !== "mqtt.m.==" || sb !== "mqtt.m.==") assert.notEqual(sa, sb);
      }),
      fcParams(2000),
    );
  });

  test("subjectTopic() refuses subjects topicSubject() does not make", () => {
    for (
      const subject of [
        "mqtt.m.==",
        "mqtt.m",
        "mqtt.m.",
        "mqtt",
        "mqttx.m.a",
        "other.m.a",
        "mqtt.m.a..b",
        "mqtt.m.a.",
        "mqtt.m..a",
        "mqtt.*.a",
        "mqtt.m.*",
        "mqtt.m.a.>",
        "mqtt.m.a b",
        "mqtt.m.=Kw", // "+": a wildcard, no topic name
        "mqtt.m.=Iw.a", // "#/a"
        "mqtt.m.=AA", // U+0000
        "mqtt.m.=YQ", // "a", spelled as no topic's subject spells it
        "mqtt.m." + "x".repeat(MAX_SUBJECT), // too long to be a topic's own subject
      ]
    ) {
      assert.equal(subjectTopic("mqtt", subject), undefined, subject);
    }
  });

  test("topicSubject() refuses a prefix or kind that is no literal tokens", () => {
    for (const prefix of ["", "a b", "a..b", ".a", "a.", "*", "a.>", "a\u0001", "x".repeat(200)]) {
      assert.throws(() => topicSubject(prefix, "m", "t"), TypeError, JSON.stringify(prefix));
      assert.throws(() => filterSubjects(prefix, "t"), TypeError, JSON.stringify(prefix));
    }
    for (const kind of ["", "a.b", "*", ">", " "]) {
      assert.throws(() => topicSubject("mqtt", kind, "t"), TypeError, JSON.stringify(kind));
    }
  });
});

describe("filterSubjects()", () => {
  test("filterSubjects() maps filters to subscriptions (examples)", () => {
    const long = "x".repeat(MAX_SUBJECT);
    const cases: [string, string[]][] = [
      ["a/b", ["mqtt.*.a.b"]],
      ["a//b", ["mqtt.*.a.=.b"]],
      ["a/+", ["mqtt.*.a.*", "mqtt.*.=="]],
      ["a/#", ["mqtt.*.a", "mqtt.*.a.>", "mqtt.*.=="]],
      ["/#", ["mqtt.*.=", "mqtt.*.=.>", "mqtt.*.=="]],
      ["#", ["mqtt.*.>"]],
      ["+", ["mqtt.*.*"]],
      ["+/#", ["mqtt.*.*", "mqtt.*.*.>"]],
      ["+/+", ["mqtt.*.*.*", "mqtt.*.=="]],
      ["$SYS/#", ["mqtt.*.=JFNZUw", "mqtt.*.=JFNZUw.>", "mqtt.*.=="]],
      ["a.b/+", ["mqtt.*.=YS5i.*", "mqtt.*.=="]],
      ["$share/g/a/#", ["mqtt.*.a", "mqtt.*.a.>", "mqtt.*.=="]],
      [long, ["mqtt.*.=="]],
      [`${long}/#`, ["mqtt.*.=="]],
      [`a/+/${long}`, ["mqtt.*.=="]],
      ["é".repeat(400), ["mqtt.*.=="]],
    ];
    for (const [f, subjects] of cases) {
      assert.deepEqual(filterSubjects("mqtt", f), subjects, f.slice(0, 30));
    }
  });

  test("filterSubjects() refuses an invalid filter", () => {
    for (const f of ["", "a/#/b", "a+", "#/a", "$share/g"]) {
      assert.throws(
        () => filterSubjects("mqtt", f),
        (error) => error instanceof MqttError && error.reasonCode === ReasonCode.TopicFilterInvalid,
        f,
      );
    }
  });

  function check(f: string, t: string): void {
    const subjects = filterSubjects("mqtt", f);
    assert.ok(subjects.length >= 1);
    for (const s of subjects) assert.equal(subjectProblem(s, true), undefined, s);
    const subject = topicSubject("mqtt", "m", t);
    const receivedBy = subjects.filter((s) => natsMatches(s, subject));
    const matches = topicMatches(f, t);
    if (matches) {
      assert.ok(receivedBy.length >= 1, `${JSON.stringify(f)} misses ${JSON.stringify(t)} on ${subject}`);
    }
    assert.ok(receivedBy.length <= 1, `${subject} arrives on ${receivedBy.join(", ")}`);
    // Exact, but for long topics and the "$" rule.
    const dollarRule = t.startsWith("$") && (f.startsWith("+") || f.startsWith("#"));
    if (subject !== "mqtt.m.==" && !dollarRule) {
      assert.equal(receivedBy.length === 1, matches, `${JSON.stringify(f)} and ${JSON.stringify(t)}`);
    }
  }

  test("the subscriptions receive every topic the filter matches (topics made from the filter)", () => {
    fc.assert(
      fc.property(filter.chain((f) => fc.tuple(fc.constant(f), topicOf(f))), ([f, t]) => check(f, t)),
      {
        ...fcParams(3000),
      },
    );
  });

  test("the subscriptions receive every topic the filter matches (any topics)", () => {
    fc.assert(fc.property(filter, topic, check), fcParams(3000));
  });

  test("the subscriptions receive topics of 60,000 characters that the filter matches", () => {
    const long = "x".repeat(30_000);
    for (const t of [`${long}/${long}`, `a/${long}`, `$SYS/${long}`, `a/b/${"é".repeat(40_000)}`]) {
      for (const f of ["#", "+/#", "a/#", "a/+", "+/+", "a/b/+", `a/${long}`, "$SYS/#", "+/+/+"]) check(f, t);
    }
  });
});

describe("sharedQueue()", () => {
  test("sharedQueue() names queues with tokens (examples)", () => {
    assert.equal(sharedQueue("workers", "jobs/#"), "workers.jobs.=Iw");
    assert.equal(sharedQueue("g", "a/+/b"), "g.a.=Kw.b");
    assert.equal(sharedQueue("my group", "a"), "=bXkgZ3JvdXA.a");
    assert.equal(sharedQueue("g", "/"), "g.=.=");
    const long = sharedQueue("g", "x".repeat(MAX_QUEUE));
    const name = `g.${"x".repeat(MAX_QUEUE)}`;
    assert.equal(
      long,
      `${name.slice(0, MAX_QUEUE - 32)}==${fnvReference(utf8.encode(name))}-${(258).toString(36)}`,
    );
  });

  test("queue names are short, without whitespace, and distinct for distinct pairs", () => {
    const group = fc.oneof(
      fc.constantFrom("g", "workers", "a.b", "x".repeat(300)),
      level.filter((l) => l !== ""),
    );
    const pair = fc.tuple(group, fc.oneof(filter, topicFilter));
    fc.assert(
      fc.property(pair, pair, ([g1, f1], [g2, f2]) => {
        const q1 = sharedQueue(g1, f1);
        assert.match(q1, /^[A-Za-z0-9_=.-]+$/);
        assert.ok(q1.length <= MAX_QUEUE);
        if (g1 !== g2 || f1 !== f2) assert.notEqual(q1, sharedQueue(g2, f2));
        else assert.equal(q1, sharedQueue(g2, f2));
      }),
      fcParams(2000),
    );
    // Filters that differ only after the cut.
    const head = "a/".repeat(200);
    assert.notEqual(sharedQueue("g", `${head}b`), sharedQueue("g", `${head}c`));
    assert.notEqual(sharedQueue("g", `${head}+`), sharedQueue("g", `${head}#`));
  });
});

describe("keyOf()", () => {
  test("keyOf() keeps plain texts and escapes all others (examples)", () => {
    const cases: [string, string][] = [
      ["client-1", "client-1"],
      ["a/b", "a/b"],
      ["/", "/"],
      ["", "="],
      ["a.b", "=YS5i"],
      [".", "=Lg"],
      ["a b", "=YSBi"],
      ["ü", "=w7w"],
      ["*", "=Kg"],
      ["=", "=PQ"],
    ];
    for (const [text, key] of cases) assert.equal(keyOf(text), key, JSON.stringify(text));
    const long = "é".repeat(MAX_KEY);
    assert.equal(keyOf(long), `==${fnvReference(utf8.encode(long))}-${(2 * MAX_KEY).toString(36)}`);
    assert.equal(keyOf("y".repeat(MAX_KEY)), "y".repeat(MAX_KEY));
    assert.match(keyOf("y".repeat(MAX_KEY + 1)), /^==[0-9a-f]{16}-[0-9a-z]+$/);
    assert.equal(
      keyOf("x".repeat(60_000)),
      `==${fnvReference(utf8.encode("x".repeat(60_000)))}-${(60_000).toString(36)}`,
    );
  });

  const text = fc.oneof(
    { weight: 3, arbitrary: level },
    { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(..."ab/-_.=") }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary" }) },
    { weight: 1, arbitrary: fc.integer({ min: 370, max: 390 }).map((n) => "é".repeat(n)) },
    { weight: 1, arbitrary: fc.integer({ min: MAX_KEY - 3, max: MAX_KEY + 3 }).map((n) => "k".repeat(n)) },
  );

  test("keys are valid and distinct for distinct texts up to the length that is hashed", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const ka = keyOf(a);
        assert.ok(validKey(ka), ka);
        assert.ok(ka.length <= MAX_KEY);
        if (a !== b) assert.notEqual(ka, keyOf(b));
        else assert.equal(ka, keyOf(b));
      }),
      fcParams(3000),
    );
  });
});
