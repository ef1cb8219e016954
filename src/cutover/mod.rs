//! After the migration, the switch: `rewrite` points the application's
//! own data at the new URLs; `offload` frees the server's disk once every
//! file is proven in the bucket, and `restore` puts files back; `files` is
//! the file side of both (sameness, moves that leave a file whole in one
//! place whatever stops them).

pub mod files;
pub mod offload;
pub mod restore;
pub mod rewrite;
