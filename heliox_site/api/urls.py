"""`/admin/api/`: the original Heliox admin API's resources, under django-admin's prefix."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from abuse.api.views import BlockedListView, UnblockView
from analytics.api.views import ServiceHealthView, ServicesHealthView
from billing.api.views import PlanViewSet, SubscriptionViewSet
from gateway.api.views import CachePolicyViewSet, CachePurgeView, RouteViewSet
from heliox_site.api import schema  # noqa: F401 - registers the X-Admin-Key scheme with drf-spectacular
from tenants.api.views import ApiKeyViewSet, TenantViewSet

router = SimpleRouter(trailing_slash=False)
router.register("tenants", TenantViewSet, basename="admin-tenant")
router.register("keys", ApiKeyViewSet, basename="admin-key")
router.register("routes", RouteViewSet, basename="admin-route")
router.register("policies", CachePolicyViewSet, basename="admin-policy")
router.register("plans", PlanViewSet, basename="admin-plan")
router.register("subscriptions", SubscriptionViewSet, basename="admin-subscription")

urlpatterns = [
    path("analytics/", include("analytics.api.urls")),
    path("cache/purge", CachePurgeView.as_view(), name="admin-cache-purge"),
    path("abuse/blocked", BlockedListView.as_view(), name="admin-abuse-blocked"),
    path("abuse/unblock/<int:key_id>", UnblockView.as_view(), name="admin-abuse-unblock"),
    path("services/health", ServicesHealthView.as_view(), name="admin-services-health"),
    path("services/<slug:name>/health", ServiceHealthView.as_view(), name="admin-service-health"),
    *router.urls,
]
