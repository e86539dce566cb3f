"""The template commands: inspect the upload, store it, announce it. One function per command.

Writes go blob first, then the document that points at it; a failed document write deletes its blobs,
so nothing stored ever points at a missing file and no half-written version is ever visible.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from publipost_contracts import TemplateRegistered

from .context import TemplateContext
from .domain import (
    DOCX_CONTENT_TYPE,
    OptionChanges,
    Template,
    TemplateNotFound,
    TemplateOptions,
    TemplateVersion,
    VersionConflict,
    check_invoice_mapping,
    stored_now,
)
from .inspection import Inspection, inspect_upload
from .package import PackageLimits

# Two people adding versions at the same instant: the loser takes the next number, a few times at most.
_VERSION_ATTEMPTS = 5


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str


async def register_template(
    ctx: TemplateContext, *, tenant_id: str, correlation_id: str, name: str, upload: Upload, options: TemplateOptions
) -> TemplateVersion:
    """A new template at version 1. Returns the stored version."""
    inspection = await _inspect(ctx, upload, options)
    template = Template.new(tenant_id=tenant_id, name=name, now=stored_now())
    version = await _store_version(ctx, template, 1, upload, inspection, options, template.created_at)
    if version is None:  # a fresh uuid is never taken
        raise VersionConflict()
    try:
        await ctx.templates.add(template)
    except Exception:
        await _forget(ctx, version)
        raise
    await _announce(ctx, correlation_id, name, version)
    return version


async def add_version(
    ctx: TemplateContext,
    *,
    tenant_id: str,
    correlation_id: str,
    template_id: str,
    upload: Upload,
    changes: OptionChanges,
) -> TemplateVersion:
    """A new version of a template; options not in `changes` are the latest version's."""
    template = await ctx.templates.get(tenant_id, template_id)
    latest = await ctx.versions.get(tenant_id, template_id)
    if template is None or latest is None:
        raise TemplateNotFound(template_id)
    options = latest.options().changed(changes)
    inspection = await _inspect(ctx, upload, options)
    now = stored_now()
    for _ in range(_VERSION_ATTEMPTS):
        version = await _store_version(ctx, template, latest.next_number, upload, inspection, options, now)
        if version is not None:
            break
        latest = await ctx.versions.get(tenant_id, template_id) or latest
    else:
        raise VersionConflict()
    await ctx.templates.touch(template_id, now)
    await _announce(ctx, correlation_id, template.name, version)
    return version


async def delete_template(ctx: TemplateContext, *, tenant_id: str, template_id: str) -> None:
    """The template disappears first; its versions and files follow. Stopped halfway, what is left is
    unreachable files, never a template whose file is gone."""
    if not await ctx.templates.delete(tenant_id, template_id):
        raise TemplateNotFound(template_id)
    for version in await ctx.versions.all_of(tenant_id, template_id):
        await _forget(ctx, version)


async def upgrade_stored_templates(ctx: TemplateContext) -> None:
    """Give each template stored before versions existed its version 1, in place, so nothing uploaded then
    is lost. Run by the migration (app.py), again after one stopped halfway: each step is idempotent."""
    for template in await ctx.templates.first_generation():
        await ctx.versions.add(template.as_version())
        await ctx.templates.mark_upgraded(template.id, template.created_at)


async def _inspect(ctx: TemplateContext, upload: Upload, options: TemplateOptions) -> Inspection:
    check_invoice_mapping(options.entity_type, options.invoice_mapping)  # refused before the file is read
    settings = ctx.settings
    limits = PackageLimits(
        max_bytes=settings.max_template_bytes,
        max_uncompressed_bytes=settings.max_uncompressed_bytes,
        max_entries=settings.max_zip_entries,
        max_ratio=settings.max_compression_ratio,
    )
    # Parsing an untrusted file is CPU-bound and may be slow by design of the file: off the event loop.
    return await asyncio.to_thread(
        inspect_upload,
        upload.data,
        limits=limits,
        entity_type=options.entity_type,
        custom_fields=options.custom_fields,
    )


async def _store_version(
    ctx: TemplateContext,
    template: Template,
    number: int,
    upload: Upload,
    inspection: Inspection,
    options: TemplateOptions,
    now: datetime,
) -> TemplateVersion | None:
    """Store the files, then the version; None (and no files left) when the number was taken meanwhile."""
    tags = {"tenant_id": template.tenant_id, "template_id": template.id, "version": number}
    blob_ids: list[str] = []
    try:
        blob_ids.append(
            await ctx.storage.blobs.put(inspection.docx, f"{template.name}.docx", DOCX_CONTENT_TYPE, **tags)
        )
        if inspection.converted:
            blob_ids.append(
                await ctx.storage.blobs.put(upload.data, upload.filename, DOCX_CONTENT_TYPE, original=True, **tags)
            )
        version = TemplateVersion.uploaded(
            tenant_id=template.tenant_id,
            template_id=template.id,
            number=number,
            filename=upload.filename,
            fields=inspection.fields,
            options=options,
            blob_id=blob_ids[0],
            original_blob_id=blob_ids[1] if inspection.converted else None,
            field_mapping=inspection.field_mapping,
            conversion_notes=inspection.conversion_notes,
            created_at=now,
        )
        added = await ctx.versions.add(version)
    except Exception:
        await _delete_blobs(ctx, blob_ids)
        raise
    if not added:
        await _delete_blobs(ctx, blob_ids)
        return None
    return version


async def _forget(ctx: TemplateContext, version: TemplateVersion) -> None:
    await ctx.versions.remove(version)
    await _delete_blobs(ctx, version.blob_ids)


async def _delete_blobs(ctx: TemplateContext, blob_ids: list[str]) -> None:
    for blob_id in blob_ids:
        await ctx.storage.blobs.delete(blob_id)


async def _announce(ctx: TemplateContext, correlation_id: str, name: str, version: TemplateVersion) -> None:
    await ctx.bus.publish(
        TemplateRegistered(
            tenant_id=version.tenant_id,
            correlation_id=correlation_id,
            template_id=version.template_id,
            name=name,
            version=version.version,
            fields=version.fields,
            custom_fields=version.custom_fields,
            template_type=version.template_type,
        )
    )
