#!/usr/bin/env node
/**
 * The `tenantgate` command (SPEC §2). Each subcommand is a module in cli/,
 * imported only when it runs: the proxy's resident memory does not carry the
 * other commands' dependencies.
 */

const USAGE = `usage:
  tenantgate serve    -c <config.yaml>   run the proxy (default ./config/tenantgate.yaml)
  tenantgate validate -c <config.yaml>   check a config; print every problem with its path and line
  tenantgate keys generate --tenant <id> [--project <id>] [--scopes a,b] [--env live|test] [--expires <ISO>] [--id <id>] [--json]
                                         print a new API key once, and its record (hash only) for apiKeys:
  tenantgate keys create|list|rotate|revoke …
                                         manage keys through a running proxy's admin API (see tenantgate keys --help)
  tenantgate tenants create|list|get|update|suspend|activate|delete …
                                         manage tenants through the admin API ($TENANTGATE_ADMIN_TOKEN, --admin-url, --json)
  tenantgate usage report --from <YYYY-MM-DD> --to <YYYY-MM-DD> [--tenant <id>] [--json] (--file <path> | --redis <url> --stream <name>)
                                         per-tenant totals (requests, cost, bytes, rejections) from a usage sink
`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'serve': {
    // SIGHUP's default action ends the process, and loading serve's modules takes a
    // while (a config reloader may signal then): until serve has its own handler, a
    // SIGHUP is kept as a reload request. Only Node's own start-up, before this line,
    // is left unguarded.
    let hupWhileLoading = false;
    const keepHup = (): void => void (hupWhileLoading = true);
    process.on('SIGHUP', keepHup);
    const { runServe } = await import('./cli/serve.js');
    await runServe(args, {
      hupReceived: () => hupWhileLoading,
      release: () => process.off('SIGHUP', keepHup),
    });
    break;
  }
  case 'validate':
    process.exitCode = await (await import('./cli/validate.js')).runValidate(args);
    break;
  case 'keys':
    process.exitCode = await (await import('./cli/keys.js')).runKeys(args);
    break;
  case 'tenants':
    process.exitCode = await (await import('./cli/tenants.js')).runTenants(args);
    break;
  case 'usage':
    process.exitCode = await (await import('./cli/usage.js')).runUsage(args);
    break;
  case '-h':
  case '--help':
  case 'help':
    process.stdout.write(USAGE);
    break;
  default:
    process.stderr.write(command === undefined ? USAGE : `unknown command "${command}"\n${USAGE}`);
    process.exitCode = 2;
}
