from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView

from analytics import dashboard
from analytics import views as analytics_views
from gateway import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("metrics", analytics_views.metrics, name="metrics"),
    path("metrics/prometheus", analytics_views.metrics_prometheus_text, name="metrics-prometheus"),
    # Before admin/: django-admin's catch-all would answer these paths otherwise.
    path("admin/api/", include("heliox_site.api.urls")),
    path("admin/dashboard/", admin.site.admin_view(dashboard.dashboard), name="heliox-dashboard"),
    path("admin/dashboard/data", admin.site.admin_view(dashboard.dashboard_data), name="heliox-dashboard-data"),
    path("admin/", admin.site.urls),
    path("auth/", include("tenants.accounts.urls")),
    path("portal/", include("tenants.portal.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi-schema"), name="openapi-redoc"),
]

handler500 = "heliox_site.api.errors.server_error"
