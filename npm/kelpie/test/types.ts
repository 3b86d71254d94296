// Compiled (never run) by crates/kelpie-cli/tests/cli/node_api.rs with `tsc --strict`: the
// calls people write against PM2's API, typed by lib/index.d.ts. A type that does not fit the
// API's shape fails the compilation.
import kelpie = require('..');

async function promises(): Promise<void> {
  await kelpie.connect();
  const started: kelpie.ProcessDescription[] = await kelpie.start('app.js', { name: 'api', instances: 2, maxRestarts: 3 });
  await kelpie.start({ script: 'worker.js', name: 'worker', env: { NODE_ENV: 'production' } });
  await kelpie.start('ecosystem.config.js', { only: ['api'] });
  const status: string = started[0].pm2_env.status;
  const memory: number = started[0].monit.memory;
  await kelpie.stop('api');
  await kelpie.restart(0, { updateEnv: true });
  await kelpie.reload('all');
  await kelpie.delete('worker');
  const described = await kelpie.describe('api');
  const names: string[] = (await kelpie.list()).map((p) => p.name);
  await kelpie.sendSignalToProcessName('SIGUSR2', 'api');
  await kelpie.sendSignalToProcessId(2, 0);
  const sent = await kelpie.sendDataToProcessId(0, { topic: 'config', data: { level: 'debug' } });
  const ok: boolean = sent.success;
  const bus = await kelpie.launchBus();
  bus.on('process:event', (packet) => {
    const code: number | null = packet.process.exit_code;
    console.log(packet.event, packet.process.name, code);
  });
  bus.on('log:out', (packet) => process.stdout.write(packet.data));
  bus.on('process:msg', (packet) => console.log(packet.data));
  bus.close();
  await kelpie.flush();
  await kelpie.dump();
  await kelpie.killDaemon();
  const other: kelpie.Kelpie = kelpie.custom({ pm2_home: '/srv/kelpie' });
  await other.disconnect();
  console.log(status, memory, described, names, ok);
}

function callbacks(): void {
  kelpie.connect((err) => {
    if (err) throw err;
    kelpie.start('app.js', { name: 'api' }, (startErr, procs) => {
      if (startErr instanceof kelpie.KelpieError) console.log(startErr.kind);
      console.log(procs?.length);
      kelpie.list((listErr, list) => {
        console.log(listErr, list?.[0]?.pm2_env.restart_time);
        kelpie.disconnect();
      });
    });
  });
}

void promises;
void callbacks;
