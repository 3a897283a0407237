"""Factories and helpers shared by the tenants and gateway tests."""

from __future__ import annotations

from typing import Any

import factory
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, models
from django.test import Client
from django.urls import reverse

from billing.models import Plan
from gateway.models import Route
from gateway.services import route_create
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_issue, tenant_create

LOCAL_UPSTREAM = "http://127.0.0.1:8001"


class TenantFactory(factory.django.DjangoModelFactory):
    """A tenant made the way the product makes one (with its Subscription): `TenantFactory(plan_slug="pro")`."""

    class Meta:
        model = Tenant

    class Params:
        plan_slug = "free"

    name = factory.Sequence(lambda n: f"Tenant {n}")
    plan = factory.LazyAttribute(lambda o: Plan.objects.get(slug=o.plan_slug))

    @classmethod
    def _create(cls, model_class: type[Tenant], *args: Any, **kwargs: Any) -> Tenant:
        return tenant_create(**kwargs)


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A key issued by `api_key_issue`; its secret is gone (call the service to keep one)."""

    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"key {n}")

    @classmethod
    def _create(cls, model_class: type[ApiKey], *args: Any, **kwargs: Any) -> ApiKey:
        return api_key_issue(**kwargs).api_key


class RouteFactory(factory.django.DjangoModelFactory):
    """A route made by `route_create`, to the local example upstream; `tenant=None` is shared."""

    class Meta:
        model = Route

    tenant = factory.SubFactory(TenantFactory)
    slug = factory.Sequence(lambda n: f"route-{n}")
    upstream_url = LOCAL_UPSTREAM

    @classmethod
    def _create(cls, model_class: type[Route], *args: Any, **kwargs: Any) -> Route:
        return route_create(**kwargs)


def staff_with_every_permission(username: str = "staff") -> Any:
    """A staff user who is not a superuser but holds every model permission: the admin's own
    has_*_permission overrides are what then decide."""
    user = get_user_model().objects.create_user(username=username, password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    return user


def admin_url(model: type[models.Model], view: str, *args: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def registered_models(app_label: str) -> list[type[models.Model]]:
    """The app's models, each of which must have an admin (a missing one fails the caller)."""
    return list(apps.get_app_config(app_label).get_models())


def assert_admin_pages_render(client: Client, model: type[models.Model]) -> None:
    """The changelist, the first object's change form and (when allowed) the add form answer 200."""
    assert model in admin.site._registry, f"{model._meta.label} has no ModelAdmin"
    obj = model._default_manager.first()
    assert obj is not None, f"the test should create a {model._meta.label}"
    changelist = client.get(admin_url(model, "changelist"))
    assert changelist.status_code == 200
    assert client.get(admin_url(model, "change", obj.pk)).status_code == 200
    if admin.site._registry[model].has_add_permission(changelist.wsgi_request):
        assert client.get(admin_url(model, "add")).status_code == 200


def stored_text() -> str:
    """Every row of every table, as text: what someone who stole the database would read."""
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dump.append(f"{table}: {cursor.fetchall()!r}")
    return "\n".join(dump)
