//! The apps' ports: the listening socket Kelpie owns for an app with `listen` (one per app,
//! shared by its instances, kept across restarts and reloads), and the sockets cluster-mode
//! Node apps' code asked for (the port registry).

use crate::sockets::{ClaimedSockets, HandedSocket, ListenSocket, PortRegistry};
use crate::state::StateFile;
use kelpie_core::AppSpec;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The sockets of the apps, by app name.
#[derive(Default)]
pub(super) struct Ports {
    /// Listening sockets of apps with a Kelpie-owned port.
    sockets: BTreeMap<String, Arc<ListenSocket>>,
    /// Sockets the code of cluster-mode Node apps asked for.
    registry: Arc<PortRegistry>,
}

impl Ports {
    /// The listening socket `spec` needs: the app's current one when the address is the same,
    /// else a new one (not yet registered: see [`Ports::keep`]). None when Kelpie owns no port
    /// for it.
    pub(super) fn open(&self, spec: &AppSpec) -> Result<Option<Arc<ListenSocket>>, PortError> {
        let Some(address) = spec.listen.as_ref().filter(|_| !spec.reuse_port) else {
            return Ok(None);
        };
        if let Some(socket) = self
            .sockets
            .get(&spec.name)
            .filter(|s| s.address() == address)
        {
            return Ok(Some(socket.clone()));
        }
        ListenSocket::open(address)
            .map(|socket| Some(Arc::new(socket.kept_for(&spec.name))))
            .map_err(|error| PortError {
                app: spec.name.clone(),
                error,
            })
    }

    /// Make `socket` the one of app `name` (or forget its socket with `None`).
    pub(super) fn keep(&mut self, name: &str, socket: Option<Arc<ListenSocket>>) {
        match socket {
            Some(socket) => {
                self.sockets.insert(name.to_string(), socket);
            }
            None => {
                self.sockets.remove(name);
            }
        }
    }

    /// The socket of app `name`, if Kelpie owns one for it.
    pub(super) fn socket_of(&self, name: &str) -> Option<Arc<ListenSocket>> {
        self.sockets.get(name).cloned()
    }

    /// App `name`'s view of the sockets cluster-mode Node apps' code asked for.
    pub(super) fn claims_of(&self, name: &str) -> Arc<ClaimedSockets> {
        ClaimedSockets::of(name, &self.registry)
    }

    /// App `old` is now called `new`: its sockets go with it.
    pub(super) fn rename(&mut self, old: &str, new: &str) {
        if let Some(socket) = self.sockets.remove(old) {
            self.sockets.insert(new.to_string(), socket);
        }
        self.registry.rename_app(old, new);
    }

    /// App `name`'s last instance is gone: its ports close (the processes still stopping hold
    /// their own copies until they exit).
    pub(super) fn forget(&mut self, name: &str) {
        self.sockets.remove(name);
        self.registry.forget_app(name);
    }

    /// Every app is gone (`kill`).
    pub(super) fn clear(&mut self) {
        self.sockets.clear();
        self.registry.clear();
    }

    /// Second descriptors of every socket, for the program `kelpie update` execs.
    pub(super) fn hand_over(
        &self,
    ) -> std::io::Result<(BTreeMap<String, OwnedFd>, Vec<HandedSocket>)> {
        let mut sockets = BTreeMap::new();
        for (name, socket) in &self.sockets {
            sockets.insert(name.clone(), socket.fd().try_clone_to_owned()?);
        }
        Ok((sockets, self.registry.hand_over()?))
    }

    /// The sockets a previous program handed over become the apps' of `state` (before the apps
    /// are restored, so nothing binds their ports again); those of apps it does not have are
    /// closed.
    pub(super) fn resume(
        &mut self,
        state: &StateFile,
        claimed: Vec<HandedSocket>,
        sockets: BTreeMap<String, OwnedFd>,
    ) {
        for handed in claimed {
            if state.apps.iter().any(|app| app.spec.name == handed.app) {
                self.registry.adopt(handed);
            }
        }
        for (name, fd) in sockets {
            let address = state
                .apps
                .iter()
                .find(|app| app.spec.name == name)
                .and_then(|app| app.spec.listen.clone());
            match address {
                Some(address) => {
                    let socket = ListenSocket::resume(&address, fd).kept_for(&name);
                    self.sockets.insert(name, Arc::new(socket));
                }
                None => crate::daemon_log!(
                    "update: the socket of app `{name}` was handed over but the app is not in the state; closed"
                ),
            }
        }
    }
}

/// An app's port could not be opened (in use, not allowed, not an address of this machine).
#[derive(Debug, thiserror::Error)]
#[error("app `{app}`: {error}")]
pub(super) struct PortError {
    app: String,
    error: crate::sockets::ListenError,
}
