"""Admin forms: the same rules as the services, with errors on the fields they concern."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from tenants.models import ApiKey, Tenant
from tenants.services import ensure_key_capacity


class ApiKeyAdminForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "environment", "expires_at", "scopes", "allowed_routes", "ip_allowlist",
                  "rate_limit_rps", "rate_limit_burst", "rate_limit_algorithm", "quota_daily", "quota_monthly"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        tenant: Tenant | None = cleaned.get("tenant")
        if self.instance.pk is None and tenant is not None:
            try:
                ensure_key_capacity(tenant)
            except ValidationError as error:
                self.add_error("tenant", error.message_dict.get("tenant", error.messages))
        rps = cleaned.get("rate_limit_rps")
        if rps is not None and rps <= 0:
            # apikey_rps_positive would refuse it too, but as an error on no field in particular.
            self.add_error("rate_limit_rps", "A rate limit must be above zero.")
        burst = cleaned.get("rate_limit_burst")
        if burst is not None and burst < 1:
            self.add_error("rate_limit_burst", "A burst must allow at least one request.")
        return cleaned
