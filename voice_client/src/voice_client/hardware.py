"""GPIO through gpiozero: the encoder's push button, its rotation, the amplifier pin.

The pin factory comes from ``GPIO_PIN_FACTORY`` (gpiozero's own names: lgpio
on a Raspberry Pi 5, mock on simulated devices) or gpiozero's default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from gpiozero import Button, DigitalOutputDevice, RotaryEncoder
from gpiozero.exc import GPIOZeroError

log = logging.getLogger(__name__)


class GPIOError(RuntimeError):
    """The pins cannot be used with the configured pin factory."""


def make_pin_factory(name: str | None) -> Any:
    """A gpiozero pin factory by name; None lets gpiozero choose (GPIOZERO_PIN_FACTORY, then probing)."""
    if name is None:
        return None
    found = [ep for ep in entry_points(group="gpiozero_pin_factories") if ep.name == name]
    if not found:
        raise GPIOError(f"GPIO_PIN_FACTORY={name!r}: gpiozero has no such pin factory installed")
    try:
        return found[0].load()()
    except Exception as exc:
        raise GPIOError(
            f"GPIO_PIN_FACTORY={name!r} cannot start: {exc} (on a Raspberry Pi 5 use lgpio; "
            "on a machine without GPIO use mock)"
        ) from exc


class Controls:
    """The push button, the rotary encoder and the amplifier's shutdown pin."""

    def __init__(
        self,
        *,
        button_pin: int,
        clk_pin: int,
        dt_pin: int,
        amp_pin: int,
        on_press: Callable[[], None],
        on_rotate: Callable[[int], None],
        pin_factory: Any = None,
        bounce_time: float | None = 0.05,
    ) -> None:
        self._devices: list[Any] = []
        try:
            self.amp = DigitalOutputDevice(
                amp_pin, active_high=True, initial_value=False, pin_factory=pin_factory
            )
            self._devices.append(self.amp)
            self.button = Button(button_pin, pull_up=True, bounce_time=bounce_time, pin_factory=pin_factory)
            self._devices.append(self.button)
            self.encoder = RotaryEncoder(clk_pin, dt_pin, max_steps=0, pin_factory=pin_factory)
            self._devices.append(self.encoder)
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            self.close()
            raise GPIOError(
                f"cannot set up the GPIO pins (button {button_pin}, encoder {clk_pin}/{dt_pin}, "
                f"amplifier {amp_pin}): {exc}. On a machine without GPIO set GPIO_PIN_FACTORY=mock"
            ) from exc
        self.button.when_pressed = on_press
        self.encoder.when_rotated_clockwise = lambda: on_rotate(+1)
        self.encoder.when_rotated_counter_clockwise = lambda: on_rotate(-1)

    def set_amp(self, on: bool) -> None:
        if on:
            self.amp.on()
        else:
            self.amp.off()

    def close(self) -> None:
        for device in reversed(self._devices):
            try:
                if device is getattr(self, "amp", None):
                    device.off()
                device.close()
            except Exception as exc:
                log.warning("closing %r failed: %s", device, exc)
        self._devices.clear()
