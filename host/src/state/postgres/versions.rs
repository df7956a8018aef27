//! The PostgreSQL store's plugin versions ([`VersionStore`]), shared by
//! every instance that uses the store.

use super::PgStore;
use crate::state::{LiveVersion, VersionStore};

impl VersionStore for PgStore {
    fn live(&self) -> anyhow::Result<Vec<LiveVersion>> {
        let pool = self.pool.clone();
        self.run(async move {
            let rows = Self::client(&pool)
                .await?
                .query(
                    "SELECT plugin, hash, origin, paused FROM switchyard_plugins",
                    &[],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| LiveVersion {
                    plugin: r.get(0),
                    hash: r.get(1),
                    origin: r.get(2),
                    paused: r.get(3),
                })
                .collect())
        })
    }

    fn publish(&self, live: &LiveVersion, wasm: Option<&[u8]>) -> anyhow::Result<()> {
        let (pool, live, wasm) = (self.pool.clone(), live.clone(), wasm.map(<[u8]>::to_vec));
        self.run(async move {
            let mut client = Self::client(&pool).await?;
            let txn = client.transaction().await?;
            if let Some(wasm) = wasm {
                txn.execute(
                    "INSERT INTO switchyard_wasm (hash, wasm) VALUES ($1, $2) \
                     ON CONFLICT (hash) DO NOTHING",
                    &[&live.hash, &wasm],
                )
                .await?;
            }
            txn.execute(
                "INSERT INTO switchyard_plugins (plugin, hash, origin, paused) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (plugin) DO UPDATE SET \
                 hash = EXCLUDED.hash, origin = EXCLUDED.origin, paused = EXCLUDED.paused, \
                 changed_at = now()",
                &[&live.plugin, &live.hash, &live.origin, &live.paused],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    fn wasm(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let (pool, hash) = (self.pool.clone(), hash.to_string());
        self.run(async move {
            let row = Self::client(&pool)
                .await?
                .query_opt("SELECT wasm FROM switchyard_wasm WHERE hash = $1", &[&hash])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn shared(&self) -> bool {
        true
    }
}
