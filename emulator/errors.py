"""Binance error answers: `ApiError(code, msg, http_status)` and the messages Binance uses.

Codes and messages are Binance's (spot `/api/v3`, USD-M `/fapi`); ccxt maps them to its exception
classes by code and message, so they must match character for character.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: JSON body {"code": code, "msg": msg} with HTTP status `http_status`."""

    def __init__(self, code: int, msg: str, http_status: int = 400):
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def payload(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")


def not_required(name: str) -> ApiError:
    return ApiError(-1106, f"Parameter '{name}' sent when not required.")


INVALID_SYMBOL = (-1121, "Invalid symbol.")
INVALID_SIDE = (-1117, "Invalid side.")
INVALID_TYPE = (-1116, "Invalid orderType.")
INVALID_TIF = (-1115, "Invalid timeInForce.")
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
BAD_KEY_FORMAT = (-2014, "API-key format invalid.")
BAD_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
RECV_WINDOW_TOO_LARGE = (-1131, "recvWindow must be less than 60000")
TS_OUTSIDE = (-1021, "Timestamp for this request is outside of the recvWindow.")
TS_AHEAD = (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
UNKNOWN_ORDER = (-2011, "Unknown order sent.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")
# spot order rejections (-2010 NEW_ORDER_REJECTED with these messages)
SPOT_INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")
SPOT_DUPLICATE = (-2010, "Duplicate order sent.")
SPOT_WOULD_TAKE = (-2010, "Order would immediately match and take.")
SPOT_STOP_IMMEDIATE = (-2010, "Stop price would trigger immediately.")
# usdm order rejections
FUT_MARGIN = (-2019, "Margin is insufficient.")
FUT_DUPLICATE = (-4116, "ClientOrderId is duplicated.")
FUT_GTX_REJECT = (-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                         "The order will not be recorded in the order history")
FUT_STOP_IMMEDIATE = (-2021, "Order would immediately trigger.")
FUT_REDUCE_ONLY = (-2022, "ReduceOnly Order is rejected.")
FUT_TICK = (-4014, "Price not increased by tick size.")
FUT_PRECISION = (-1111, "Precision is over the maximum defined for this asset.")
FUT_QTY_LE_ZERO = (-4003, "Quantity less than or equal to zero.")
FUT_QTY_MAX = (-4005, "Quantity greater than max quantity.")


def err(pair: tuple[int, str], http_status: int = 400) -> ApiError:
    return ApiError(pair[0], pair[1], http_status)


def filter_failure(name: str) -> ApiError:
    return ApiError(-1013, f"Filter failure: {name}")
