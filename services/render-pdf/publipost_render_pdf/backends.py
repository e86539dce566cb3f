"""Which converter a tenant's chunks go to: this service's LibreOffice pool, or a Gotenberg server."""

from publipost_outbound import OutboundPolicy

from .batch import CombinedRuns
from .combine import COMBINERS
from .converter import Converter, ConverterUnavailable
from .domain import Backend, BackendChoice, TenantConversionSettings
from .gotenberg import GotenbergConverter
from .libreoffice import LibreOfficePool
from .pdf_split import SPLITTERS
from .settings import RenderPdfSettings


class Backends:
    """The local pool, and one Gotenberg client per server URL, kept for the life of the service."""

    def __init__(self, settings: RenderPdfSettings, libreoffice: LibreOfficePool) -> None:
        self.settings = settings
        self.libreoffice = libreoffice
        # What a Gotenberg URL a tenant's admin sets may reach (publipost_outbound): checked when it is set and
        # at every connection. The service's own PUBLIPOST_GOTENBERG_URL is the platform team's, not checked.
        self.outbound = OutboundPolicy.of(settings.outbound_allow)
        self._gotenberg: dict[str, GotenbergConverter] = {}
        self._runs: dict[Converter, CombinedRuns] = {}

    def choice_for(self, tenant: TenantConversionSettings) -> BackendChoice:
        return tenant.backend_choice(self.settings.backend, self.settings.gotenberg_url)

    def overflow_for(self, tenant: TenantConversionSettings) -> BackendChoice | None:
        return tenant.overflow_choice(self.settings.gotenberg_url)

    def converter(self, choice: BackendChoice) -> Converter:
        if choice.backend is Backend.LIBREOFFICE:
            return self.libreoffice
        if not choice.gotenberg_url:
            raise ConverterUnavailable("the gotenberg backend is chosen but no Gotenberg URL is configured")
        if choice.gotenberg_url not in self._gotenberg:
            own = choice.gotenberg_url == self.settings.gotenberg_url
            self._gotenberg[choice.gotenberg_url] = GotenbergConverter(
                choice.gotenberg_url, self.settings.gotenberg_timeout_s, outbound=None if own else self.outbound
            )
        return self._gotenberg[choice.gotenberg_url]

    def runs(self, choice: BackendChoice) -> CombinedRuns:
        """The combined runs of the chosen backend, shared by every chunk that goes to it."""
        converter = self.converter(choice)
        if converter not in self._runs:
            self._runs[converter] = CombinedRuns(
                converter,
                self.settings.batch_size,
                self.settings.workers,
                combine=COMBINERS[self.settings.docx_combiner],
                split=SPLITTERS[self.settings.pdf_splitter],
            )
        return self._runs[converter]

    async def stop(self) -> None:
        for runs in self._runs.values():
            await runs.stop()
        self._runs.clear()
        for client in self._gotenberg.values():
            await client.close()
        self._gotenberg.clear()
