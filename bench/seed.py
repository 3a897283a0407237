"""Creates the benchmark's tenant, keys and routes (run with the bench's environment)."""

from __future__ import annotations

import json
import os
import sys

import django


def main(upstream: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")
    django.setup()
    from billing.models import Plan
    from gateway.services import cache_policy_create, route_create
    from tenants.services import api_key_issue, tenant_create

    tenant = tenant_create(name="Bench", plan=Plan.objects.get(slug="enterprise"))
    fast = api_key_issue(tenant=tenant, name="bench", rate_limit_rps=1e9, rate_limit_burst=10**9,
                         quota_daily=0, quota_monthly=0).secret
    storm = api_key_issue(tenant=tenant, name="storm", rate_limit_rps=0.001, rate_limit_burst=1).secret
    long_lived = cache_policy_create(name="bench-hit", ttl_seconds=3600, negative_cache_404=False)
    always_stale = cache_policy_create(name="bench-swr", ttl_seconds=0, stale_while_revalidate_seconds=3600,
                                       negative_cache_404=False)
    route_create(tenant=tenant, slug="bench", upstream_url=upstream, methods=["GET"], timeout_ms=10_000)
    route_create(tenant=tenant, slug="benchhit", upstream_url=upstream, methods=["GET"], timeout_ms=10_000,
                 cache_policy=long_lived)
    route_create(tenant=tenant, slug="benchswr", upstream_url=upstream, methods=["GET"], timeout_ms=10_000,
                 cache_policy=always_stale)
    print(json.dumps({"fast": fast, "storm": storm}))


if __name__ == "__main__":
    main(sys.argv[1])
