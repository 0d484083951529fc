"""``kiln site``: the catalog site and registry front door; ``kiln site publish``.

* ``kiln site [--host H] [--port P] [--store DIR] [--db URL]`` serves the store (default
  ``out/``): the catalog pages, the JSON API and the OCI distribution pull API (under
  ``HOST:PORT/kiln/<name>``), read-only;
* ``kiln site publish SPEC... --key KEY [--store DIR]`` builds (or reuses) each variant,
  runs its tests, signs its attestations into the layout and publishes the public key
  to ``DIR/kiln.pub``: the local counterpart of ``kiln publish``.
"""

# ruff: noqa: PLC0415
# (starlette, uvicorn and the attestation stack load inside the commands)

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app, console, err_console
from kiln.cli.attest import KeyOption, PasswordFile
from kiln.cli.buildview import (
    DEFAULT_OUTPUT,
    ConsoleBuildListener,
    show_check,
    split_csv,
    warn_untestable,
)
from kiln.errors import EnvironmentProblem, InputError

site_app = typer.Typer(
    help="The catalog site and the read-only registry front door.",
    invoke_without_command=True,
)
app.add_typer(site_app, name="site")

Store = Annotated[
    Path, typer.Option("--store", help="the published OCI layouts (kiln build's output)")
]


@site_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    store: Store = DEFAULT_OUTPUT,
    db: Annotated[
        str | None, typer.Option(help="vulnerability database path or SQLAlchemy URL")
    ] = None,
    rate: Annotated[
        float, typer.Option(help="requests per second per client (0: no limit)")
    ] = 50.0,
    burst: Annotated[int, typer.Option(help="requests a client may make at once")] = 200,
    forge: Annotated[
        Path | None, typer.Option(help="the catalog git repository holding kiln's pull requests")
    ] = None,
) -> None:
    """Serve the catalog, its JSON API and the OCI pull API over the store."""
    if ctx.invoked_subcommand is not None:
        return
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: use 1-65535")
    if not store.is_dir():
        raise InputError(
            f"--store {store}: no such directory",
            hint="build images first (make demo, kiln build, kiln site publish)",
        )
    import uvicorn

    from kiln.site.app import create_app
    from kiln.site.web import SiteConfig

    public = f"{host}:{port}" if host not in ("0.0.0.0", "::") else f"127.0.0.1:{port}"  # noqa: S104
    application = create_app(SiteConfig(store, db, public, forge), rate=rate, burst=burst)
    # the socket is ours: a port in use or an address this machine does not have is an
    # environment error naming it, not uvicorn's log line and exit 1
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say
    # so, and without it every small answer waits ~40 ms for a delayed ACK (measured)
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise EnvironmentProblem(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port, or stop what listens there",
        ) from exc
    console.print(f"kiln site: http://{public}/ (registry: {public}/kiln/<name>:<tag>)")
    config = uvicorn.Config(application, log_level="warning", access_log=False)
    with listener:
        uvicorn.Server(config).run(sockets=[listener])


@site_app.command("publish")
def publish(
    specs: Annotated[list[Path], typer.Argument(help="image spec files (images/<name>.yaml)")],
    key: KeyOption = None,
    password_file: PasswordFile = None,
    store: Store = DEFAULT_OUTPUT,
    arch: Annotated[list[str] | None, typer.Option("--arch", help="only these archs")] = None,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="only these variants")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="relock against the archive first")
    ] = False,
) -> None:
    """Build, test and attest images into the store the site serves."""
    from kiln.attest import KeyBundleSigner
    from kiln.pipeline import ArchiveAccess
    from kiln.pipeline.build import BuildOptions, build_spec, layout_dir
    from kiln.pipeline.imagetest import check_every_platform
    from kiln.pipeline.publish import BuildObservation, attestations_for
    from kiln.pipeline.signing import bundle_signer
    from kiln.progress import ConsoleProgress
    from kiln.site.stage import (
        keep_release,
        previous_bundles,
        previous_meta,
        settle_release,
        site_meta,
        write_attestations,
        write_meta,
        write_public_key,
    )
    from kiln.spec import load_spec

    signer = bundle_signer(key, False, password_file)
    if not isinstance(signer, KeyBundleSigner):  # bundle_signer(KEY) is key-based
        raise InputError("kiln site publish signs with --key KEY")
    options = BuildOptions(
        output=store,
        archs=tuple(split_csv(arch)),
        variants=tuple(split_csv(variant)),
        refresh=refresh,
    )
    archive = ArchiveAccess.from_environment()
    listener = ConsoleBuildListener()
    progress = ConsoleProgress(err_console)
    store.mkdir(parents=True, exist_ok=True)
    write_public_key(store, signer.signer.public_key_pem())
    for path in specs:
        loaded = load_spec(path)
        wanted = [
            v for v in loaded.spec.variant_names() if not options.variants or v in options.variants
        ]
        layouts = {v: layout_dir(store, loaded.spec.name, v) for v in wanted}
        # read before the build replaces the layouts: an unchanged digest keeps its date,
        # and what is published now is kept as an earlier release (dropped again below
        # when the rebuild gives the same image)
        before = {v: previous_meta(layouts[v]) for v in wanted}
        evidence = {v: previous_bundles(layouts[v]) for v in wanted}
        kept = {v: keep_release(layouts[v], store, loaded.spec.label(v)) for v in wanted}
        try:
            for built in build_spec(loaded, archive, options, listener=listener, progress=progress):
                reports = check_every_platform(
                    built, on_checked=show_check, on_untestable=warn_untestable
                )
                attestations = attestations_for(
                    BuildObservation.of(built, test_reports=reports), signer
                )
                layout = built.image.layout
                write_attestations(layout, attestations, evidence[built.variant])
                digest = built.image.index_digest
                write_meta(layout, site_meta(loaded, built.variant, digest, before[built.variant]))
                console.print(
                    f"published {built.label} into {layout}: {len(attestations)} attestations",
                    markup=False,
                    highlight=False,
                )
        finally:
            for v in wanted:
                settle_release(kept[v], layouts[v])
