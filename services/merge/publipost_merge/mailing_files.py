"""A mailing's files: its contents once settled (counts, print-file plan, documents file), a print-file
part built at its first download, and every file removed with the mailing."""

from .context import MergeContext
from .documents_file import write_documents_file
from .domain import (
    DocumentStatus,
    Mailing,
    MailingContents,
    PrintPart,
    chunked,
)
from .print_file import PartFile, build_part, delete_parts, plan_parts


async def contents(ctx: MergeContext, mailing: Mailing) -> MailingContents:
    """Counts, the print file's plan (its files are built on download) and the documents file."""
    documents = await ctx.documents.count(mailing.id)
    failed = await ctx.documents.count(mailing.id, DocumentStatus.FAILED)
    page_limit = (await ctx.tenant_settings.get(mailing.tenant_id)).page_limit(ctx.settings.combined_page_limit)
    return MailingContents(
        documents=documents,
        failed=failed,
        converted_by=await ctx.documents.converted_by(mailing.id),
        parts=await plan_parts(ctx.documents, mailing, page_limit),
        documents_file_id=await write_documents_file(ctx.storage, ctx.documents, mailing),
    )


async def print_part(ctx: MergeContext, mailing: Mailing, part: PrintPart) -> PartFile:
    """Build a part of the print file at its first download, and store it for the next ones."""
    built = await build_part(ctx.storage, ctx.documents, mailing, part)
    # Regrouped or deleted while it was built: its file would be left to no one.
    now = await ctx.mailings.get(mailing.id)
    if now is None or part not in now.parts:
        await delete_parts(ctx.storage, [part])
    return built


async def delete_mailing(ctx: MergeContext, mailing: Mailing) -> None:
    """Files first, then the records that point at them: a delete cut short can be run again."""
    async for blob_ids in chunked(ctx.documents.blob_ids(mailing.id), 1000):
        await ctx.storage.blobs.delete_many(blob_ids)
    await delete_parts(ctx.storage, mailing.parts)
    await delete_documents_file(ctx, mailing)
    await ctx.documents.delete_of(mailing.id)
    if (request := await ctx.requests.get(mailing.id)) is not None:  # started over HTTP: its records file too
        if request.records_file_id:
            await ctx.storage.blobs.delete(request.records_file_id)
        await ctx.requests.delete(mailing.id)
    await ctx.mailings.delete(mailing.id)


async def delete_documents_file(ctx: MergeContext, mailing: Mailing) -> None:
    if mailing.documents_file_id:
        await ctx.storage.blobs.delete(mailing.documents_file_id)
