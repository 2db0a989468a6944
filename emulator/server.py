"""`EmulatorServer`: the emulator on 127.0.0.1 in a background thread, with test controls.

    with EmulatorServer(EmulatorConfig.for_symbols(["BTCUSDT"], "usdm", manual_clock=True)) as emu:
        client = emu.client()             # a ccxt client pointed at emu.base_url
        emu.advance_trades("BTCUSDT", 1)  # market time → the next trade (manual clock)
        emu.records("order")              # the request log
        ex = emu.pro_client()             # a ccxt.pro client: market streams and user data over websockets

Market time starts at `start + warmup`: the warm-up trades are history (served, never matched).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from aiohttp import web

from core.time import NS_PER_MS
from emulator.config import EmulatorConfig, FaultRule
from emulator.engine import Engine
from emulator.faults import FaultGate, RequestRecord, WsFaultRule
from emulator.replay import ReplayClock, Tape, build_tape
from emulator.rest import RestApi
from emulator.ws_market import WsConfig, WsHub


def wall_clock_ms() -> int:
    return time.time_ns() // NS_PER_MS


class EmulatorServer:
    """The emulator: tapes, clock, engine, fault gate and the aiohttp server (port 0 = ephemeral)."""

    def __init__(self, config: EmulatorConfig, *, port: int = 0, wall_ms: Callable[[], int] = wall_clock_ms,
                 ws: WsConfig | None = None):
        self.config = config
        self.port = port
        self.tapes: dict[str, Tape] = {s.instrument.symbol: build_tape(config, s) for s in config.symbols}
        first = min(int(t.ts[0]) for t in self.tapes.values() if len(t))
        self.clock = ReplayClock(first + config.warmup, config.speed, config.manual_clock)
        self.engine = Engine(config, self.tapes, self.clock)
        self.gate = FaultGate(config.faults)
        self.lock = threading.Lock()
        self.api = RestApi(self.engine, self.gate, self.lock, wall_ms)
        with self.lock:
            self.engine.sync()
        self.ws = WsHub(self.engine, self.lock, ws or WsConfig(), wall_ms)  # websockets (emulator.ws_market)
        self.api.user_streams = self.ws.user
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> EmulatorServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = web.AppRunner(self.api.app(self.ws.setup), access_log=None, handle_signals=False,
                                             shutdown_timeout=2.0)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", self.port)
                loop.run_until_complete(site.start())
                self._bound_port = site._server.sockets[0].getsockname()[1]
            except BaseException as e:  # surfaced to the caller of start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="emulator-http", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def base_url(self) -> str:
        assert self._bound_port is not None, "server not started"
        return f"http://127.0.0.1:{self._bound_port}"

    # -- test controls --------------------------------------------------------------------------

    def advance_to(self, ts_ns: int) -> None:
        """Manual clock: market time → ts_ns; every trade up to it is matched."""
        with self.lock:
            self.clock.set(ts_ns)
            self.engine.sync()
        self.ws.wake()

    def advance_trades(self, symbol: str, n: int = 1) -> list[int]:
        """Manual clock: move to the n-th not-yet-matched trade of `symbol` (and all trades of every
        symbol up to its time). Returns the tape indices of `symbol` consumed."""
        tape = self.tapes[symbol]
        if n == 0:
            return []
        i = tape.cursor + n - 1
        if n < 0 or i >= len(tape):
            raise ValueError(f"{symbol}: cannot advance {n} trades (cursor {tape.cursor}, {len(tape)} trades)")
        first = tape.cursor
        self.advance_to(int(tape.ts[i]))
        return list(range(first, tape.cursor))

    def next_trade(self, symbol: str, k: int = 0) -> tuple[float, float, int]:
        """(price, qty, ts_ns) of the k-th trade after the current cursor (the future, for tests)."""
        tape = self.tapes[symbol]
        i = tape.cursor + k
        return float(tape.price[i]), float(tape.qty[i]), int(tape.ts[i])

    def add_fault(self, rule: FaultRule) -> None:
        self.gate.add(rule)

    def add_ws_fault(self, rule: WsFaultRule) -> None:
        """Install a websocket fault (drop / delay / close of matching stream messages)."""
        self.ws.faults.add(rule)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    def adjust_balance(self, asset: str, delta: float, api_key: str | None = None) -> None:
        """A deposit (delta > 0) or withdrawal outside trading: spot balanceUpdate +
        outboundAccountPosition, usdm ACCOUNT_UPDATE (m DEPOSIT / WITHDRAW) on the user streams."""
        from execution.ledger import ACC_WALLET

        acct = self.engine.accounts[api_key or self.config.accounts[0].api_key]
        with self.lock:
            if acct.ledger is not None:
                if asset != "USDT":
                    raise ValueError("usdm: only the USDT wallet can be adjusted")
                acct.ledger.acc[ACC_WALLET] += delta
            else:
                acct.balances.setdefault(asset, [0.0, 0.0])[0] += delta
            self.ws.user.balance_event(acct, asset, delta)

    def pro_client(self, api_key: str | None = None, secret: str | None = None):
        """An async ccxt.pro client for this emulator (see `emulator.client.make_emulator_pro_client`)."""
        from emulator.client import make_emulator_pro_client

        acct = self.config.accounts[0]
        return make_emulator_pro_client(self.config.market.value, self.base_url,
                                        api_key if api_key is not None else acct.api_key,
                                        secret if secret is not None else acct.secret)

    def clear_faults(self) -> None:
        self.gate.clear()

    def records(self, endpoint: str | None = None) -> list[RequestRecord]:
        return [r for r in list(self.gate.records) if endpoint is None or r.endpoint == endpoint]

    def client(self, api_key: str | None = None, secret: str | None = None):
        """A sync ccxt client for this emulator (see `emulator.client.make_emulator_client`)."""
        from emulator.client import make_emulator_client

        acct = self.config.accounts[0]
        return make_emulator_client(self.config.market.value, self.base_url,
                                    api_key if api_key is not None else acct.api_key,
                                    secret if secret is not None else acct.secret)
