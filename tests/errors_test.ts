import { test } from "node:test";
import assert from "node:assert/strict";
import {
  isReasonCode,
  MqttError,
  REASON_TEXT,
  ReasonCode,
  reasonCodeFromReturnCode,
  returnCodeFromReasonCode,
} from "../src/errors.ts";

test("every reason code of MQTT 5 §2.4 has a name and a text", () => {
  const values = new Set(Object.values(ReasonCode));
  assert.equal(values.size, 43);
  for (const value of values) {
    assert.equal(typeof REASON_TEXT[value], "string");
    assert.ok(isReasonCode(value));
  }
  assert.equal(Object.keys(REASON_TEXT).length, values.size);
  assert.equal(isReasonCode(0x03), false);
  assert.equal(isReasonCode(0xa3), false);
});

test("MqttError carries the reason code, its text, a source and a cause", () => {
  const cause = new Error("socket reset");
  const error = new MqttError(ReasonCode.NotAuthorized, undefined, { source: "peer", cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "MqttError");
  assert.equal(error.message, "Not authorized");
  assert.equal(error.reasonCode, 0x87);
  assert.equal(error.source, "peer");
  assert.equal(error.cause, cause);
  assert.equal(new MqttError(ReasonCode.ProtocolError, "Cannot do it").source, "local");
  assert.equal(new MqttError(ReasonCode.ProtocolError, "Cannot do it").message, "Cannot do it");
});

test("MQTT 3.x CONNACK return codes map to reason codes and back", () => {
  for (let returnCode = 0; returnCode <= 5; returnCode++) {
    assert.equal(returnCodeFromReasonCode(reasonCodeFromReturnCode(returnCode)), returnCode);
  }
  assert.throws(() => reasonCodeFromReturnCode(6), RangeError);
  assert.equal(returnCodeFromReasonCode(ReasonCode.QuotaExceeded), 3);
});
