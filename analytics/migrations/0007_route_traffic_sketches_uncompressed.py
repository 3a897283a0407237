from django.db import migrations

# Every ingest pass reads and rewrites each active route's sketches: 64 KB of count-min
# counters and 4 KB of HyperLogLog registers. Stored compressed (PostgreSQL's default for
# values this large), each pass decompressed and compressed them again: a quarter of what the
# sketches cost the consumer. Stored out of line but uncompressed, they cost only the copy.


def set_storage(apps, schema_editor, storage="EXTERNAL"):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("analytics", "RouteTraffic")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN paths_cms SET STORAGE {storage}, "
                              f"ALTER COLUMN unique_ips_hll SET STORAGE {storage}")


def reset_storage(apps, schema_editor):
    set_storage(apps, schema_editor, storage="EXTENDED")


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0006_rollup_fillfactor"),
    ]

    operations = [
        migrations.RunPython(set_storage, reset_storage),
    ]
