/** A promise with its settle functions (the callbacks of a pending MQTT flow). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

/** A new deferred. Its promise is marked handled, so an unobserved rejection never crashes the process. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Runs `then` after `r` when `r` is a promise, at once otherwise (store writes may be sync or async). */
export function afterMaybe(r: void | Promise<void>, then: () => void, fail: (e: Error) => void): void {
  if (r && typeof (r as Promise<void>).then === "function") (r as Promise<void>).then(then, fail);
  else then();
}
