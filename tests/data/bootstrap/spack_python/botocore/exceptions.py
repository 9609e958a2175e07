"""botocore.exceptions.ClientError, as far as the bootstrap helper reads it."""

from typing import Any


class ClientError(Exception):
    def __init__(self, error_response: dict[str, Any], operation_name: str) -> None:
        super().__init__(
            f"An error occurred ({error_response['Error']['Code']}) when calling "
            f"the {operation_name} operation"
        )
        self.response = error_response
