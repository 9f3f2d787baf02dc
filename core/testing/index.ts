/** `tollgate/testing`: a real gateway in the test's own process, for plugin authors' tests. */
export { createTestGateway, type TestGateway, type TestGatewayOptions, type TestResponse, type UpstreamRequest } from './test-gateway.ts';
