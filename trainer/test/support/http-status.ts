import { request } from 'node:http';

/** The status code of GET `path` on 127.0.0.1:`port` (rejects when nothing listens there). */
export function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}
