"""`fitclub device-options`, `devices`, `approve-device` and `zkteco-sync` (registered by
app.cli)."""
from typing import Annotated

import typer

from app.access import devices
from app.access.protocols import allowlist
from app.access.protocols.common import configure_device
from app.core.db import unit_of_work


def register(cli: typer.Typer) -> None:
    @cli.command("device-options")
    def device_options(
        device_id: int,
        allow: Annotated[list[str] | None, typer.Option(
            help="a network the device may call from (repeat; e.g. 10.20.0.0/16)")] = None,
        clear_networks: Annotated[bool, typer.Option(help="allow any address again")] = False,
        open_door_seconds: Annotated[int | None, typer.Option(
            help="ZKTeco: open door 1 this long on a granted background verification "
                 "(0: off)")] = None,
    ) -> None:
        """Restrict where a turnstile may call from; ZKTeco door opening."""
        with unit_of_work() as session:
            options = configure_device(session, device_id=device_id, allowed_networks=allow,
                                       open_door_seconds=open_door_seconds,
                                       clear_networks=clear_networks)
            typer.echo(f"device {device_id}: networks {options.allowed_networks or 'any'}, "
                       f"open door {options.open_door_seconds or 'off'}")

    @cli.command("devices")
    def list_devices(club_id: Annotated[int, typer.Option("--club", help="club id")]) -> None:
        """A club's devices: status (active, pending approval, revoked), networks, and where a
        pending ZKTeco device was seen calling from."""
        with unit_of_work() as session:
            for d in devices.list_devices(session, club_id=club_id):
                seen = (f" seen from {', '.join(d.seen_addresses) or 'nowhere yet'}"
                        if d.status == "pending" else "")
                typer.echo(f"{d.id}\t{d.name}\t{d.protocol}\t{d.serial_number or '-'}\t"
                           f"{d.status}\tnetworks {', '.join(d.allowed_networks) or '-'}{seen}")

    @cli.command("approve-device")
    def approve_device(
        device_id: int,
        allow: Annotated[list[str] | None, typer.Option(
            help="a network the device may call from (repeat; required): compare with `fitclub "
                 "devices`, which lists the addresses it was seen calling from")] = None,
    ) -> None:
        """Approve a quarantined ZKTeco device for the network it calls from."""
        with unit_of_work() as session:
            club_id = devices.club_of_device(session, device_id=device_id)
            d = devices.approve_device(session, club_id=club_id, device_id=device_id,
                                       allowed_networks=allow)
            typer.echo(f"device {d.id} {d.name}: approved from {', '.join(d.allowed_networks)}")

    @cli.command("zkteco-sync")
    def zkteco_sync(
        device_id: Annotated[int | None, typer.Option("--device", help="push every member to "
                                                      "this (new) device")] = None,
        club_id: Annotated[int | None, typer.Option("--club", help="bring all of the club's "
                                                    "ZKTeco devices up to date")] = None,
    ) -> None:
        """Queue allow-list commands (run nightly with --club for ranges that begin or end)."""
        if (device_id is None) == (club_id is None):
            raise typer.BadParameter("give --device or --club")
        with unit_of_work() as session:
            n = (allowlist.sync_device(session, device_id=device_id) if device_id is not None
                 else allowlist.sync_club(session, club_id=club_id))
            typer.echo(f"{n} commands queued")
