import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EMPTY_SHA256, signV4, toAmzDate, uriEncodeSegment } from '../../../src/data';

describe('AWS SigV4', () => {
  test('reproduces the get-vanilla case of the AWS SigV4 test suite', () => {
    const signed = signV4({
      method: 'GET',
      path: '/',
      headers: { Host: 'example.amazonaws.com', 'X-Amz-Date': '20150830T123600Z' },
      payloadHash: EMPTY_SHA256,
      amzDate: '20150830T123600Z',
      region: 'us-east-1',
      service: 'service',
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    });
    assert.equal(
      signed.canonicalRequest,
      'GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n' + EMPTY_SHA256,
    );
    assert.equal(signed.signature, '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    assert.equal(
      signed.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, ' +
        'Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });

  test('formats the amz date and encodes path segments per RFC 3986', () => {
    assert.equal(toAmzDate(new Date('2015-08-30T12:36:00.123Z')), '20150830T123600Z');
    assert.equal(uriEncodeSegment("a b+c!*'()~._-"), 'a%20b%2Bc%21%2A%27%28%29~._-');
  });
});
