import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .accounts import Accounts
from .clients import DirectoryClient, EmailTemplateClient, MergeClient
from .completions import CompletionCheck
from .pdfs import PdfReader
from .repository import DeliveryRepository, DispatchRepository, ReplicaRepository, TenantSendingRepository
from .resolver import RecipientResolver
from .senders import Senders
from .settings import DispatchSettings


@dataclass(frozen=True)
class DispatchContext:
    settings: DispatchSettings
    storage: Storage
    bus: Bus
    dispatches: DispatchRepository
    deliveries: DeliveryRepository
    replicas: ReplicaRepository
    accounts: Accounts
    sending: TenantSendingRepository
    senders: Senders
    resolver: RecipientResolver
    pdfs: PdfReader
    completions: CompletionCheck
    merge: MergeClient
    email_templates: EmailTemplateClient
    directory: DirectoryClient
    # The deliveries this replica is sending now: the sweep renews their leases while they are here.
    held: set[str] = field(default_factory=set)
    manual_sends: set[asyncio.Task[None]] = field(default_factory=set)  # immediate sends under way


Context = Annotated[DispatchContext, Depends(components)]
