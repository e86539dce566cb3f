from publipost_settings import ServiceSettings


class RecipientDirectorySettings(ServiceSettings):
    service_name: str = "recipient-directory"
    http_port: int = 8102
