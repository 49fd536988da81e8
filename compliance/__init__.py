"""The Autobahn|Testsuite against a roost echo server."""
