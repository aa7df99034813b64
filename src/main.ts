#!/usr/bin/env node
/**
 * The `tenantgate` command (SPEC §2, §14). Each command is a module in cli/,
 * imported only when it runs: the proxy's resident memory does not carry the
 * other commands' dependencies. Their flags are declared in cli/commands.ts.
 * Nothing is imported before the switch: `serve` guards SIGHUP first thing.
 */

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
  case 'registry':
    process.exitCode = await (await import('./cli/registry.js')).runRegistry(args);
    break;
  case '-V':
  case '--version': {
    // Read at run time, from the package this file was built into (dist/ sits beside package.json).
    const { readFileSync } = await import('node:fs');
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${version}\n`);
    break;
  }
  case 'help': {
    // `tenantgate help keys create` is `tenantgate keys create --help`.
    const { groupHelp, help } = await import('./cli/args.js');
    const { find, isGroup, topUsage } = await import('./cli/commands.js');
    const target = args.length === 0 ? undefined : find(args);
    if (args.length > 0 && target === undefined) {
      process.stderr.write(`tenantgate help: no command "${args.join(' ')}"\n${topUsage()}`);
      process.exitCode = 2;
    } else process.stdout.write(target === undefined ? topUsage() : isGroup(target) ? groupHelp(target) : help(target));
    break;
  }
  case '-h':
  case '--help':
    process.stdout.write((await import('./cli/commands.js')).topUsage());
    break;
  default: {
    const { topUsage } = await import('./cli/commands.js');
    process.stderr.write(command === undefined ? topUsage() : `tenantgate: unknown command "${command}"\n${topUsage()}`);
    process.exitCode = 2;
  }
}
