//! After the migration, the switch: `rewrite` points the application's
//! own data at the new URLs; `offload` frees the server's disk (and
//! `restore` puts files back) once every file is proven in the bucket.

pub mod offload;
pub mod rewrite;
