/**
 * The body parser's nesting bound and the error body's bounded echo (issue 17, finding 2).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_JSON_DEPTH, nestsDeeperThan, parseJsonBody } from '../../../src/api/json-body';
import { MAX_ECHO_CHARS, MAX_LISTED_PROBLEMS, boundedProblems, boundedValue } from '../../../src/api/request';

const nested = (depth: number, open = '[', close = ']'): string => `${open.repeat(depth)}${close.repeat(depth)}`;

test('nesting is counted without recursion, brackets in strings and escaped quotes not counted', () => {
  assert.equal(nestsDeeperThan(nested(32), 32), false);
  assert.equal(nestsDeeperThan(nested(33), 32), true);
  assert.equal(nestsDeeperThan(`{"a":${nested(31, '{"b":', '}')}}`, 32), false);
  assert.equal(nestsDeeperThan(`{"a":${nested(32, '{"b":', '}')}}`, 32), true);
  assert.equal(nestsDeeperThan(`["${'['.repeat(100)}"]`, 32), false);
  assert.equal(nestsDeeperThan(`["\\"${'['.repeat(100)}"]`, 32), false, 'an escaped quote does not end the string');
  assert.equal(nestsDeeperThan(`["\\\\", ${nested(40)}]`, 32), true, 'an escaped backslash does');
  // Side by side is not nested.
  assert.equal(nestsDeeperThan(`[${Array.from({ length: 100 }, () => nested(20)).join(',')}]`, 32), false);
  // Far past any stack: no overflow, found at once.
  assert.equal(nestsDeeperThan(nested(1_000_000), 32), true);
});

test('parseJsonBody refuses a deep body naming the limit and quoting at most 80 characters of it', () => {
  const deep = parseJsonBody(Buffer.from(`{"tolerations":${nested(6_000)}}`));
  assert.equal(deep.ok, false);
  if (deep.ok) return;
  assert.match(deep.message, new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`));
  assert.equal(deep.problem.field, '(body)');
  assert.ok(String(deep.problem.value).length <= 80);
  const broken = parseJsonBody(Buffer.from(`{"a": ${'1'.repeat(10_000)}x}`));
  assert.equal(broken.ok, false);
  if (!broken.ok) assert.ok(broken.message.length < 150, broken.message);
  assert.deepEqual(parseJsonBody(Buffer.from('{"a":[1,{"b":"[["}]}')), { ok: true, value: { a: [1, { b: '[[' }] } });
});

test('an error body quotes short values as they are and long ones cut, and lists a bounded number of problems', () => {
  assert.equal(boundedValue(3), 3);
  assert.equal(boundedValue(null), null);
  assert.deepEqual(boundedValue({ a: [1] }), { a: [1] });
  assert.equal(boundedValue('x'.repeat(MAX_ECHO_CHARS)), 'x'.repeat(MAX_ECHO_CHARS));
  assert.equal(boundedValue('x'.repeat(50_000)), `${'x'.repeat(MAX_ECHO_CHARS)}...`);
  const big = boundedValue(Array.from({ length: 10_000 }, (_, i) => i));
  assert.equal(typeof big, 'string');
  assert.equal((big as string).length, MAX_ECHO_CHARS + 3);
  assert.ok((big as string).startsWith('[0,1,2,'));
  const problems = Array.from({ length: 5_000 }, (_, i) => ({
    field: `f${i}${'k'.repeat(1_000)}`,
    value: 'v'.repeat(1_000),
    allowed: 'absent',
  }));
  const listed = boundedProblems(problems);
  assert.equal(listed.length, MAX_LISTED_PROBLEMS);
  for (const p of listed) {
    assert.ok(p.field.length <= MAX_ECHO_CHARS + 3);
    assert.ok(String(p.value).length <= MAX_ECHO_CHARS + 3);
  }
});
