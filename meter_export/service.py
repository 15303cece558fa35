"""Build the one ConfigOpts a command uses, check it, and set up logging."""

import logging
import sys

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from meter_export import opts
from meter_export import utils
from meter_export.sources import CREDENTIALS_GROUP

LOG = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration value is wrong; the message names the option."""

    exit_code = 2  # the systemd unit does not restart on this one

    def __init__(self, group, name, reason):
        self.option = name if group in (None, "DEFAULT") else "[%s] %s" % (group, name)
        super().__init__("%s: %s" % (self.option, reason))


class UnreachableError(ConfigError):
    """A configured service cannot be reached at start-up; may work later."""

    exit_code = 1


def check_credentials(conf):
    """Load the auth plugin now, so a missing option fails before any work."""
    if conf[CREDENTIALS_GROUP].auth_type is None:
        raise ConfigError(CREDENTIALS_GROUP, "auth_type", "required (e.g. password, v3applicationcredential, gnocchi-basic, none)")
    try:
        ks_loading.load_auth_from_conf_options(conf, CREDENTIALS_GROUP)
    except ks_exc.MissingRequiredOptions as e:
        names = ", ".join(o.dest for o in e.options)
        raise ConfigError(CREDENTIALS_GROUP, names, "required by auth_type %s" % conf[CREDENTIALS_GROUP].auth_type)
    except (ks_exc.ClientException, ValueError) as e:
        raise ConfigError(CREDENTIALS_GROUP, "auth_type", str(e))


def register_opts(conf):
    # NOTE(sink): the auth plugin's own options (auth_url, user, endpoint...)
    # depend on auth_type; keystoneauth registers them when it loads the
    # plugin, so only the sample config lists them ahead of time.
    plugin_opts = {o.dest for o in ks_loading.get_auth_plugin_conf_options("password")}
    for group, group_opts in opts.list_opts():
        if group == CREDENTIALS_GROUP:
            group_opts = [o for o in group_opts if o.dest not in plugin_opts]
        conf.register_opts(group_opts, group=None if group == "DEFAULT" else group)
    ks_loading.register_auth_conf_options(conf, CREDENTIALS_GROUP)
    ks_loading.register_session_conf_options(conf, CREDENTIALS_GROUP)


def prepare_service(argv=None, conf=None, cli_opts=(), default_config_files=None, description=None):
    """Parse argv and config files into a checked ConfigOpts.

    :raises ConfigError: a value is invalid; nothing has been done yet.
    """
    conf = conf if conf is not None else cfg.ConfigOpts()
    register_opts(conf)
    conf.register_cli_opts(list(cli_opts))
    try:
        conf(
            argv if argv is not None else sys.argv[1:],
            project="meter-export",
            validate_default_values=True,
            default_config_files=default_config_files,
            description=description,
        )
    except cfg.ConfigFilesNotFoundError as e:
        raise ConfigError(None, "config-file", "cannot read %s" % ", ".join(e.config_files))
    except cfg.Error as e:
        raise ConfigError(None, "command line", str(e))
    check_config(conf)
    setup_logging(conf)
    conf.log_opt_values(LOG, logging.DEBUG)
    return conf


def check_config(conf):
    """Read every option once so a bad value fails now, not mid-sync."""
    for group, group_opts in opts.list_opts():
        section = conf if group == "DEFAULT" else conf[group]
        for opt in group_opts:
            try:
                getattr(section, opt.dest)
            except (cfg.ConfigFileValueError, ValueError) as e:
                raise ConfigError(group, opt.name, str(e))
            except cfg.NoSuchOptError:
                continue
    _check_database_url(conf)
    _check_auth(conf)
    try:
        utils.parse_start(conf.sync.initial_start)
    except ValueError as e:
        raise ConfigError("sync", "initial_start", str(e))


def _check_database_url(conf):
    from meter_export.storage import engine as storage_engine

    try:
        storage_engine.dress_url(conf.database.connection)
    except Exception as e:  # sqlalchemy raises several kinds for a bad URL
        raise ConfigError("database", "connection", "invalid URL (%s)" % e)


def _check_auth(conf):
    auth_type = conf[CREDENTIALS_GROUP].auth_type
    if auth_type is None:
        return
    try:
        ks_loading.get_plugin_loader(auth_type)
    except ks_exc.NoMatchingPlugin:
        raise ConfigError(CREDENTIALS_GROUP, "auth_type", "unknown auth plugin %r" % auth_type)


def setup_logging(conf):
    """Send our logs to stderr (and log_file); safe to call again in a child."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    handlers = [logging.StreamHandler(sys.stderr)]
    if conf.log_file:
        handlers.append(logging.FileHandler(conf.log_file))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if conf.debug else logging.INFO)
    # NOTE(sink): these libraries log every HTTP request at DEBUG, tokens included.
    for noisy in ("keystoneauth", "urllib3", "stevedore", "iso8601", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
