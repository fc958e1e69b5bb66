// The `smpp` package ships no types; the adapter and the tests use it through `any`.
declare module 'smpp' {
  const smpp: any;
  export default smpp;
}
