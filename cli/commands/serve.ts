import { Command, Option } from 'commander';
import { SETTINGS } from '../../server/config.js';

/**
 * `inboxd serve [settings]`: the server. Its flags are the server's settings (server/config.ts),
 * listed by --help with their environment variables and defaults, and handed to it as given:
 * the server resolves and checks them (a bad value exits 2 naming the setting).
 */
export function serveCommand(): Command {
  const cmd = new Command('serve').description('run the inboxd server (until SIGTERM or Ctrl-C, then drain and exit 0)');
  const options = SETTINGS.map(s => {
    const def = s.def === '' ? 'unset' : s.def;
    return { s, option: new Option(`--${s.flag} <value>`, `${s.help} [env ${s.env}, default ${def}]`) };
  });
  for (const { option } of options) cmd.addOption(option);
  cmd.addHelpText('after', '\nEvery setting can also be given as its environment variable; a flag wins over the environment.');
  return cmd.action(async () => {
    const argv: string[] = [];
    for (const { s, option } of options) {
      const name = option.attributeName();
      if (cmd.getOptionValueSource(name) === 'cli') argv.push(`--${s.flag}`, String(cmd.getOptionValue(name)));
    }
    const { serve } = await import('../../server/serve.js');
    await serve(argv);
    // serve() returns once listening; the server runs until a signal ends the process.
    await new Promise(() => {});
  });
}
