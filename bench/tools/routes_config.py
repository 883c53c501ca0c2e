"""Row 7 of bench/run.sh: write the gateway config with N routes from the rendered bench/out/gateway.yaml.

usage: python routes_config.py BASE.yaml OUT.yaml N PORT METRICS_PORT

The same gateway as row 1 (defaults but for what the rig must set), its upstream and headers moved into
routes: N - 1 routes that the measured request does not match (half by host, half by path prefix) and one
catch-all route that it does, which is the last one a request is compared with (routes are tried most
specific first). With N = 1 only the catch-all: the difference between the two is the cost of the routes.
"""
import sys

import yaml

base, out, n, port, metrics = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
config = yaml.safe_load(open(base, encoding="utf-8"))
host = config["listen"].rpartition(":")[0]
config["listen"] = f"{host}:{port}"
config["public_url"] = f"http://{host}:{port}"
config["metrics"] = {"listen": f"{host}:{metrics}"}
upstream, headers, public = config.pop("upstream"), config.pop("headers"), config.pop("public_paths", [])
routes = []
for i in range(1, n):
    match = {"host": f"app{i}.bench.invalid"} if i % 2 else {"path_prefix": f"/app{i}/"}
    routes.append({"name": f"app{i}", "match": match, "upstream": upstream, "headers": headers})
routes.append({"name": "catch-all", "upstream": upstream, "headers": headers, "public_paths": public,
               "assertion": {"audience": config.get("assertion", {}).get("audience", "upstream")}})
config["routes"] = routes
yaml.safe_dump(config, open(out, "w", encoding="utf-8"), sort_keys=False)
