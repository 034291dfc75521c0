//! Payment timelines' statements (see `shared` and [`Change::InsertTimeline`](crate::store::Change)).

/// Expands the timeline's insert, its cleanup and [`TimelineStore`](crate::store::TimelineStore) for `$store`.
macro_rules! shared_timeline {
    ($store:ty, $db:ty, $pool:ident) => {
        /// Timeline entries in one statement, each kept only if its payment is
        /// its merchant's and, unless it is of `uncapped_kind`, while the
        /// payment has at most `cap` entries of the other kinds. The cap's
        /// count sees the rows stored before the statement, so one commit may
        /// pass it by the few rows it adds; never more.
        async fn insert_timeline(
            conn: &mut Conn,
            rows: &[TimelineRow],
            cap: i64,
            uncapped_kind: &str,
        ) -> Result<(), StoreError> {
            if rows.is_empty() {
                return Ok(());
            }
            // VALUES names its columns column1, column2, … on both backends.
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO payment_timeline (merchant_id, payment_id, at, kind, detail) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5 FROM (",
            );
            // column6, the row's place, keeps the sequence in the order given.
            query.push_values(rows.iter().zip(0i64..), |mut values, (row, place)| {
                values
                    .push_bind(&row.merchant_id)
                    .push_bind(&row.payment_id)
                    .push_bind(row.at)
                    .push_bind(&row.kind)
                    .push_bind(&row.detail)
                    .push_bind(place);
            });
            query
                .push(
                    ") AS v WHERE EXISTS (SELECT 1 FROM payments p WHERE p.id = v.column2 \
                     AND p.merchant_id = v.column1) AND (v.column4 = ",
                )
                .push_bind(uncapped_kind)
                .push(" OR (SELECT COUNT(*) FROM payment_timeline t WHERE t.payment_id = v.column2 AND t.kind <> ")
                .push_bind(uncapped_kind)
                .push(") <= ")
                .push_bind(cap)
                .push(") ORDER BY v.column6");
            query.build().execute(&mut *conn).await?;
            Ok(())
        }

        /// Removes the timeline of a draft payment that is gone (deleted just
        /// before, in the same transaction); a payment still stored keeps its own.
        async fn delete_orphan_timeline(conn: &mut Conn, merchant_id: &str, id: &str) -> Result<(), StoreError> {
            sqlx::query(
                "DELETE FROM payment_timeline WHERE payment_id = $1 AND merchant_id = $2 \
                 AND NOT EXISTS (SELECT 1 FROM payments WHERE id = $1)",
            )
            .bind(id)
            .bind(merchant_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl TimelineStore for $store {
            async fn timeline(&self, merchant_id: &str, payment_id: &str) -> Result<Vec<TimelineRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT seq, merchant_id, payment_id, at, kind, detail FROM payment_timeline \
                     WHERE payment_id = $1 AND merchant_id = $2 ORDER BY at, seq",
                )
                .bind(payment_id)
                .bind(merchant_id)
                .fetch_all(&self.$pool)
                .await?)
            }
        }
    };
}
