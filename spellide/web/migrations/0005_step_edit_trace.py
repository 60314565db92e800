from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("web", "0004_run_tags"),
    ]

    operations = [
        migrations.AddField(
            model_name="step",
            name="edit_trace",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
