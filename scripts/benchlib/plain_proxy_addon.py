"""The baseline proxy's only addon: stream every answer, as the gateway's forwarder does.

Loaded with `mitmdump -s` for the "mitmproxy" row of the benchmark — a reverse proxy with
mitmproxy's own per-request cost and none of the gateway's addons.
"""

from mitmproxy import http


class StreamAnswers:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = True


addons = [StreamAnswers()]
