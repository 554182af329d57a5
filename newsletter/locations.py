"""Where the config is looked for: names the CLI needs before anything heavy is imported."""

DEFAULT_CONFIG_PATH = "newsletter.toml"
CONFIG_ENV = "NEWSLETTER_CONFIG"
