// The official TypeScript SDK's client (@modelcontextprotocol/sdk), driven as an application would.
//
//   node sdk_client.mjs '<json>'
//     {"url": ..., "transport": "streamable" | "sse",
//      "cookie": "name=value"            -- a browser session's cookie, or
//      "browser": "/path/to/opener",     -- OAuth: the SDK's auth provider; its redirect handler runs
//                                           this program with the authorization URL (a headless browser
//                                           that delivers the redirect to our loopback callback)
//      "allowed": {"name": ..., "arguments": {...}}, "refused": {"name": ..., "arguments": {...}}}
//
// Prints one JSON object: tools listed, each call's text or the error message the SDK surfaced,
// a connect error if connecting failed, and how often the browser was opened for authorization.

import { spawn } from "node:child_process";
import { createServer } from "node:http";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const options = JSON.parse(process.argv[2]);
const REQUEST_TIMEOUT_MS = 20000;
const MAX_AUTHORIZATIONS = 3; // a client that needs more is looping

const report = { tools: null, allowed: null, refused: null, connect_error: null, browser_opens: 0 };

function loopbackCallback() {
    // The redirect URI: a listener on a free loopback port, as native apps do (RFC 8252).
    const waiting = [];
    const arrived = [];
    const server = createServer((request, response) => {
        const url = new URL(request.url, "http://127.0.0.1");
        response.end("You can close this window.");
        const params = Object.fromEntries(url.searchParams);
        const next = waiting.shift();
        next ? next(params) : arrived.push(params);
    });
    return new Promise(resolve => server.listen(0, "127.0.0.1", () => resolve({
        server,
        url: `http://127.0.0.1:${server.address().port}/callback`,
        next: () => arrived.length ? Promise.resolve(arrived.shift()) : new Promise(r => waiting.push(r)),
    })));
}

function oauthProvider(redirectUrl, browser) {
    let clientInformation, tokens, verifier;
    return {
        get redirectUrl() { return redirectUrl; },
        get clientMetadata() {
            return { client_name: "TypeScript SDK test client", redirect_uris: [redirectUrl],
                     grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
                     token_endpoint_auth_method: "none" };
        },
        clientInformation: () => clientInformation,
        saveClientInformation: info => { clientInformation = info; },
        tokens: () => tokens,
        saveTokens: saved => { tokens = saved; },
        saveCodeVerifier: saved => { verifier = saved; },
        codeVerifier: () => verifier,
        redirectToAuthorization: url => {
            report.browser_opens += 1;
            spawn(browser, [url.toString()], { stdio: "ignore" });
        },
    };
}

function transportFor(authProvider) {
    const url = new URL(options.url);
    const requestInit = options.cookie ? { headers: { Cookie: options.cookie } } : undefined;
    return options.transport === "sse"
        ? new SSEClientTransport(url, { authProvider, requestInit })
        : new StreamableHTTPClientTransport(url, { authProvider, requestInit });
}

async function connect(callback) {
    const authProvider = callback ? oauthProvider(callback.url, options.browser) : undefined;
    for (let attempt = 0; attempt <= MAX_AUTHORIZATIONS; attempt++) {
        const client = new Client({ name: "gateway-tests", version: "1.0.0" });
        const transport = transportFor(authProvider);
        try {
            await client.connect(transport);
            return client;
        } catch (error) {
            if (!(error instanceof UnauthorizedError) || !callback) throw error;
            const answer = await callback.next();
            if (answer.error) {
                throw new Error(`authorization failed: ${answer.error}${answer.error_description ? ` (${answer.error_description})` : ""}`);
            }
            await transport.finishAuth(answer.code);
        }
    }
    throw new Error(`still unauthorized after ${MAX_AUTHORIZATIONS} authorizations`);
}

async function call(client, tool) {
    try {
        const result = await client.callTool({ name: tool.name, arguments: tool.arguments ?? {} }, undefined,
                                             { timeout: REQUEST_TIMEOUT_MS });
        const text = result.content.map(part => part.text ?? "").join("");
        return result.isError ? { error: text } : { text };
    } catch (error) {
        return { error: String(error?.message ?? error) };
    }
}

async function main() {
    const callback = options.browser ? await loopbackCallback() : null;
    let client;
    try {
        client = await connect(callback);
    } catch (error) {
        report.connect_error = String(error?.message ?? error);
    }
    if (client) {
        try {
            report.tools = (await client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS })).tools.map(t => t.name).sort();
        } catch (error) {
            report.list_error = String(error?.message ?? error);
        }
        if (options.allowed) report.allowed = await call(client, options.allowed);
        if (options.refused) report.refused = await call(client, options.refused);
        await client.close().catch(() => {});
    }
    callback?.server.close();
    process.stdout.write(JSON.stringify(report) + "\n");
    process.exit(0);
}

main();
