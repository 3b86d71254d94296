// Types of Kelpie's Node API (lib/index.js), shaped like PM2's. Every call takes a callback as
// its last argument, or returns a promise without one.

import { EventEmitter } from 'events';

declare namespace kelpie {
  type Callback<T> = (err: KelpieError | Error | null, result?: T) => void;

  /** What a call acts on: 'all', an id, a name, a namespace, or a script's path. */
  type ProcessTarget = string | number;

  /** An error the daemon answered with. */
  interface KelpieError extends Error {
    /** NotFound, Conflict, Invalid, Internal, VersionMismatch or PermissionDenied. */
    kind: string;
    /** For a start that registered apps but could not start all: their descriptions. */
    processes?: ProcessDescription[];
  }

  /** An app's options, as in an ecosystem file (PM2's names; camelCase accepted too). */
  interface StartOptions {
    // Written from Kelpie's settings table (crates/kelpie-config/src/settings/): each typed field
    // under its name and PM2's other names; `cargo test -p kelpie-config` compares them with it.
    // Begin: the settings table's fields.
    name?: string;
    script?: string;
    exec?: string;
    cmd?: string;
    command?: string;
    args?: string | string[];
    interpreter?: string;
    exec_interpreter?: string;
    interpreter_args?: string | string[];
    node_args?: string | string[];
    cwd?: string;
    namespace?: string;
    env?: Record<string, string | number | boolean> | string;
    instances?: number | string;
    exec_mode?: 'fork' | 'cluster' | 'fork_mode' | 'cluster_mode';
    autorestart?: boolean;
    min_uptime?: string | number;
    max_restarts?: number;
    restart_delay?: number;
    kill_timeout?: number;
    out_file?: string;
    out?: string;
    output?: string;
    out_log?: string;
    error_file?: string;
    error?: string;
    err?: string;
    err_file?: string;
    err_log?: string;
    merge_logs?: boolean;
    combine_logs?: boolean;
    log_date_format?: string;
    max_memory_restart?: string | number;
    cron_restart?: string;
    cron?: string;
    watch?: boolean | string | string[];
    ignore_watch?: string | string[];
    wait_ready?: boolean;
    listen_timeout?: number;
    // End: the settings table's fields.
    /** Start a second copy of a running app. */
    force?: boolean;
    /** With an ecosystem file: only these apps (comma-separated or a list). */
    only?: string | string[];
    /** Any other field of an ecosystem file. */
    [field: string]: unknown;
  }

  /** One process as `jlist` and PM2's `list`/`describe` show it. */
  interface ProcessDescription {
    name: string;
    pm_id: number;
    pid: number;
    monit: { memory: number; cpu: number };
    pm2_env: {
      name: string;
      namespace: string;
      pm_id: number;
      status: 'launching' | 'online' | 'stopping' | 'stopped' | 'waiting restart' | 'errored';
      restart_time: number;
      unstable_restarts: number;
      pm_uptime: number;
      created_at: number;
      exec_mode: string;
      instances: number;
      NODE_APP_INSTANCE: number;
      pm_exec_path: string;
      pm_cwd: string;
      pm_out_log_path: string;
      pm_err_log_path: string;
      env: Record<string, string>;
      exit_code?: number;
      [field: string]: unknown;
    };
  }

  /** The process a bus packet is about. */
  interface BusProcess {
    name: string;
    pm_id: number;
    namespace?: string;
  }

  /** `process:event`: online, exit, restart, stop, errored, delete. */
  interface ProcessEventPacket {
    event: 'online' | 'exit' | 'restart' | 'stop' | 'errored' | 'delete' | string;
    manually: boolean;
    at: number;
    process: BusProcess & {
      status: string;
      pid: number | null;
      restart_time: number;
      exit_code: number | null;
      signal: string | null;
    };
  }

  /** `log:out` / `log:err`: one line, with its newline. */
  interface LogPacket {
    process: BusProcess;
    at: number | null;
    data: string;
  }

  /** A `{type, data}` message a process sent, under its type (`process:msg`...). */
  interface MessagePacket<T = unknown> {
    process: BusProcess;
    at: number;
    data: T;
  }

  interface Bus extends EventEmitter {
    on(event: 'process:event', listener: (packet: ProcessEventPacket) => void): this;
    on(event: 'log:out' | 'log:err', listener: (packet: LogPacket) => void): this;
    on(event: 'close', listener: () => void): this;
    on(event: string, listener: (packet: MessagePacket) => void): this;
    /** End the bus's connections. */
    close(): void;
  }

  interface ControlOptions {
    /** Give the processes the caller's environment. */
    updateEnv?: boolean;
  }

  interface Kelpie {
    /** The daemon's home. */
    readonly home: string;

    connect(callback: Callback<Kelpie>): void;
    connect(noDaemonMode: boolean, callback: Callback<Kelpie>): void;
    connect(noDaemonMode?: boolean): Promise<Kelpie>;
    disconnect(callback?: Callback<void>): Promise<void> | undefined;

    start(script: string, options: StartOptions, callback: Callback<ProcessDescription[]>): void;
    start(scriptOrOptionsOrFile: string | StartOptions, callback: Callback<ProcessDescription[]>): void;
    start(scriptOrOptionsOrFile: string | StartOptions, options?: StartOptions): Promise<ProcessDescription[]>;

    stop(process: ProcessTarget, callback: Callback<ProcessDescription[]>): void;
    stop(process: ProcessTarget): Promise<ProcessDescription[]>;
    restart(process: ProcessTarget, options: ControlOptions, callback: Callback<ProcessDescription[]>): void;
    restart(process: ProcessTarget, callback: Callback<ProcessDescription[]>): void;
    restart(process: ProcessTarget, options?: ControlOptions): Promise<ProcessDescription[]>;
    reload(process: ProcessTarget, options: ControlOptions, callback: Callback<ProcessDescription[]>): void;
    reload(process: ProcessTarget, callback: Callback<ProcessDescription[]>): void;
    reload(process: ProcessTarget, options?: ControlOptions): Promise<ProcessDescription[]>;
    delete(process: ProcessTarget, callback: Callback<ProcessDescription[]>): void;
    delete(process: ProcessTarget): Promise<ProcessDescription[]>;
    reset(process: ProcessTarget, callback: Callback<ProcessDescription[]>): void;
    reset(process: ProcessTarget): Promise<ProcessDescription[]>;

    list(callback: Callback<ProcessDescription[]>): void;
    list(): Promise<ProcessDescription[]>;
    describe(process: ProcessTarget, callback: Callback<ProcessDescription[]>): void;
    describe(process: ProcessTarget): Promise<ProcessDescription[]>;

    sendSignalToProcessName(signal: string | number, name: string, callback: Callback<ProcessDescription[]>): void;
    sendSignalToProcessName(signal: string | number, name: string): Promise<ProcessDescription[]>;
    sendSignalToProcessId(signal: string | number, id: number, callback: Callback<ProcessDescription[]>): void;
    sendSignalToProcessId(signal: string | number, id: number): Promise<ProcessDescription[]>;
    sendDataToProcessId(id: number, packet: { topic: string; data: unknown; [key: string]: unknown }, callback: Callback<{ success: boolean; data: unknown }>): void;
    sendDataToProcessId(packet: { id: number; topic: string; data: unknown }, callback: Callback<{ success: boolean; data: unknown }>): void;
    sendDataToProcessId(id: number, packet: { topic: string; data: unknown; [key: string]: unknown }): Promise<{ success: boolean; data: unknown }>;
    sendDataToProcessId(packet: { id: number; topic: string; data: unknown }): Promise<{ success: boolean; data: unknown }>;

    launchBus(callback: Callback<Bus>): void;
    launchBus(): Promise<Bus>;

    flush(process: ProcessTarget, callback: Callback<string>): void;
    flush(process?: ProcessTarget): Promise<string>;
    dump(callback: Callback<string>): void;
    dump(force?: boolean): Promise<string>;
    reloadLogs(callback: Callback<string>): void;
    reloadLogs(): Promise<string>;
    killDaemon(callback: Callback<string>): void;
    killDaemon(): Promise<string>;
    ping(callback: Callback<{ pid: number; version: string; uptime_ms: number }>): void;
    ping(): Promise<{ pid: number; version: string; uptime_ms: number }>;

    /** Set an app's number of instances; `'+k'` / `'-k'` add or remove k. */
    scale(name: string, count: number | string, callback: Callback<{ success: boolean }>): void;
    scale(name: string, count: number | string): Promise<{ success: boolean }>;
    /** The PM2 version whose behaviour Kelpie keeps (for tools that gate on PM2's version). */
    getVersion(callback: Callback<string>): void;
    getVersion(): Promise<string>;
    /** The daemon's Kelpie version. */
    getKelpieVersion(callback: Callback<string>): void;
    getKelpieVersion(): Promise<string>;
    /** Close the buses only. */
    disconnectBus(callback?: Callback<void>): void | Promise<void>;
    /** Run an action the processes registered with @pm2/io; resolves with one reply packet per instance. */
    trigger(process: ProcessTarget, action: string, callback: Callback<ActionReply[]>): void;
    trigger(process: ProcessTarget, action: string, params: unknown, callback: Callback<ActionReply[]>): void;
    trigger(process: ProcessTarget, action: string, params?: unknown, options?: { timeout?: number }): Promise<ActionReply[]>;
  }

  /** An action's reply, as PM2's bus carries it (`axm:reply`). */
  interface ActionReply {
    at: number;
    data: { action_name: string; return: unknown; at?: number };
    process: { name: string; pm_id: number; namespace: string };
  }
}

/** The default client: the home of $KELPIE_HOME, else ~/.kelpie. */
declare const kelpie: kelpie.Kelpie & {
  /** A client of another home (PM2's `new pm2.custom({pm2_home})`). */
  custom(options: { home?: string; pm2_home?: string }): kelpie.Kelpie;
  Kelpie: new (options?: { home?: string }) => kelpie.Kelpie;
  KelpieError: new (kind: string, message: string) => kelpie.KelpieError;
};

export = kelpie;
